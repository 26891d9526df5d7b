package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// ProxyEvent is a warn or error line of the proxy's log: what the proxy did that a client could notice.
type ProxyEvent struct {
	At    time.Time
	Level string
	Name  string // the event field (docs/logging.md), or the message for a line without one
	Text  string // the name and the fields, e.g. "server_down node=127.0.0.1:6380 reason=Layer7 timeout"
	// Disrupts is set when the proxy closed clients' sessions or refused clients: a test's failure
	// after it has an explanation in the proxy, whatever a re-run shows.
	Disrupts bool
}

// ReadProxyEvents reads the warn and error lines of a proxy's JSON log (docs/logging.md).
func ReadProxyEvents(path string) ([]ProxyEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []ProxyEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := parseProxyEvent(sc.Bytes()); ok {
			events = append(events, e)
		}
	}
	if err := sc.Err(); err != nil {
		return events, fmt.Errorf("proxy log %s: %w", path, err)
	}
	return events, nil
}

// parseProxyEvent turns one log line into an event when its level is warn or above.
func parseProxyEvent(line []byte) (ProxyEvent, bool) {
	var fields map[string]any
	if json.Unmarshal(line, &fields) != nil {
		return ProxyEvent{}, false
	}
	level, _ := fields["level"].(string)
	if level != "warn" && level != "error" && level != "fatal" && level != "panic" {
		return ProxyEvent{}, false
	}
	at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(fields["time"]))
	name := fmt.Sprint(fields["event"])
	if _, ok := fields["event"]; !ok {
		name = fmt.Sprint(fields["message"])
	}
	var keys []string
	for k := range fields {
		switch k {
		case "level", "time", "message", "event":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := []string{name}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, fields[k]))
	}
	closed, _ := fields["sessions_closed"].(float64)
	disrupts := closed > 0
	switch name {
	case "no_master", "master_switched", "backend_connect_failed", "max_conns_reached":
		disrupts = true
	}
	return ProxyEvent{At: at, Level: level, Name: name, Text: strings.Join(parts, " "), Disrupts: disrupts}, true
}

// eventsFor returns the proxy's lines that may explain a test's failure: those around the test itself, and
// the disrupting ones since its unit began (a session closed in an earlier test of the unit is the
// connection this one fails on).
func eventsFor(events []ProxyEvent, unitStart, start, end time.Time) (in []ProxyEvent, disrupted bool) {
	for _, e := range events {
		near := !e.At.Before(start.Add(-eventSlack)) && !e.At.After(end.Add(eventSlack))
		inUnit := e.Disrupts && !e.At.Before(unitStart.Add(-eventSlack)) && !e.At.After(end.Add(eventSlack))
		if near || inUnit {
			in = append(in, e)
			disrupted = disrupted || e.Disrupts
		}
	}
	return in, disrupted
}

// eventSlack widens a test's time window when the proxy's log lines are put beside it: the proxy and the
// runner stamp times from the same clock, but the suite's line about a test arrives a little after the
// test did what made the proxy act.
const eventSlack = 2 * time.Second
