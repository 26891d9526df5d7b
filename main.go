// Command sentinel-proxy puts a plain Redis address in front of a Redis Sentinel deployment: clients of
// the master port always reach the verified master, clients of the replica port a healthy replica.
// This file only turns the command line into a configuration and hands it over.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "sentinel-proxy:", err)
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if ec, ok := err.(cli.ExitCoder); ok {
		return ec.ExitCode()
	}
	return 1
}

func newApp(stdout, stderr io.Writer) *cli.App {
	configFlag := &cli.StringFlag{
		Name: "config", Aliases: []string{"c"}, EnvVars: []string{"SENTINEL_PROXY_CONFIG"},
		Usage: "path of the TOML configuration file", Required: true,
	}
	return &cli.App{
		Name:      "sentinel-proxy",
		Usage:     "a plain Redis address in front of Redis Sentinel: the master on one port, replicas on another",
		Version:   versionString(),
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by main, with the exit code they carry.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run the proxy until SIGINT or SIGTERM",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					cfg, err := loadConfig(c.String("config"))
					if err != nil {
						return err
					}
					log := newLogger(cfg.Log, stderr)
					if os.Getenv("GOGC") == "" {
						// Forwarding allocates nothing once a session runs, so the collector only works when
						// connections come and go; a low target keeps the heap, and so memory per idle
						// connection, close to what is live. GOGC in the environment overrides it.
						debug.SetGCPercent(25)
					}
					// go-redis reports pool trouble through its own package-level logger, straight to
					// stderr; route it into structured debug lines. sentinel_lost already says what matters.
					redis.SetLogger(goRedisLogger{log})
					return run(c.Context, cfg, log, nil)
				},
			},
			{
				Name:  "check",
				Usage: "validate the config, ask every Sentinel, probe every node once, print a table; exit 1 if anything is wrong",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					cfg, err := loadConfig(c.String("config"))
					if err != nil {
						return err
					}
					return runCheck(c.Context, cfg, stdout)
				},
			},
			{
				Name:  "version",
				Usage: "print the version, commit and Go version",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintln(stdout, "sentinel-proxy", versionString())
					return err
				},
			},
		},
	}
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (commit " + s.Value[:12] + ")"
			}
		}
		v += " " + info.GoVersion
	}
	return v
}

// goRedisLogger adapts go-redis's logger to zerolog at debug level.
type goRedisLogger struct{ log zerolog.Logger }

func (l goRedisLogger) Printf(_ context.Context, format string, v ...interface{}) {
	l.log.Debug().Str("component", "go-redis").Msgf(format, v...)
}
