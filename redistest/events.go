package redistest

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"
)

// EventLog records every event the Sentinels publish, with the time it arrived, for tests and
// benchmarks that measure how fast something followed an announcement.
type EventLog struct {
	mu     sync.Mutex
	events []SentinelEvent
}

// SentinelEvent is one published message.
type SentinelEvent struct {
	Sentinel, Channel, Payload string
	At                         time.Time
}

// RecordEvents subscribes to every event of every Sentinel until ctx ends. It returns once all
// subscriptions are confirmed.
func RecordEvents(ctx context.Context, sentinels []string) (*EventLog, error) {
	l := &EventLog{}
	for _, addr := range sentinels {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		rd := bufio.NewReader(conn)
		if err := send(conn, "PSUBSCRIBE", "*"); err != nil {
			return nil, err
		}
		if _, err := readReply(rd); err != nil { // the subscription confirmation
			return nil, err
		}
		go func() {
			for {
				msg, err := readReply(rd)
				if err != nil {
					return // ctx ended, or the Sentinel went away
				}
				parts := msg.Elems // pmessage, pattern, channel, payload
				if len(parts) == 4 && parts[0].Str == "pmessage" {
					l.mu.Lock()
					l.events = append(l.events, SentinelEvent{Sentinel: addr, Channel: parts[2].Str, Payload: parts[3].Str, At: time.Now()})
					l.mu.Unlock()
				}
			}
		}()
	}
	return l, nil
}

// First returns the first event on channel at or after t, from any Sentinel.
func (l *EventLog) First(channel string, t time.Time) (SentinelEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Channel == channel && !e.At.Before(t) {
			return e, true
		}
	}
	return SentinelEvent{}, false
}

// Events returns a copy of everything recorded.
func (l *EventLog) Events() []SentinelEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]SentinelEvent(nil), l.events...)
}
