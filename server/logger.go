package server

import (
	"context"
	"io"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/config"
)

// NewLogger is the process's logger as [log] configures it, writing to w.
func NewLogger(c config.Log, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).Hook(timestampHook{})
}

// timestampHook stamps each line with millisecond-or-better UTC time. zerolog's own Timestamp() formats
// with a package-level setting (seconds by default); failover timelines need milliseconds, and changing
// that global would be shared mutable state.
type timestampHook struct{}

func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("time", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
}

// LogGoRedisTo routes go-redis's own messages into log at debug level. go-redis reports pool trouble
// through its package-level logger, straight to stderr; sentinel_lost already says what matters. It
// changes that package-level logger for the whole process: only main calls it, once.
func LogGoRedisTo(log zerolog.Logger) {
	redis.SetLogger(goRedisLogger{log})
}

// goRedisLogger adapts go-redis's logger to zerolog at debug level.
type goRedisLogger struct{ log zerolog.Logger }

func (l goRedisLogger) Printf(_ context.Context, format string, v ...interface{}) {
	l.log.Debug().Str("component", "go-redis").Msgf(format, v...)
}
