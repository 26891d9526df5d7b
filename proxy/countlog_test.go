package proxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestEveryMoveIsLogged: moves come by the thousand in a failover, each session on its own turn; the
// sessions_moved lines gather them per backend, and add up to the counter, the last ones included.
func TestEveryMoveIsLogged(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	l := &Listener{Name: "g/master", Log: zerolog.New(logs)}
	for range 3 {
		l.noteMove("10.0.0.1:6379")
	}
	l.noteMove("10.0.0.2:6379")
	time.Sleep(3 * moveLogDelay / 2)
	l.noteMove("10.0.0.1:6379") // after the first lines: a line of its own
	var moved map[string]uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		moved = map[string]uint64{}
		var total uint64
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var ev struct {
				Event    string `json:"event"`
				Backend  string `json:"backend"`
				Moved    uint64 `json:"sessions_moved"`
				Listener string `json:"listener"`
			}
			if line == "" || json.Unmarshal([]byte(line), &ev) != nil || ev.Event != "sessions_moved" || ev.Listener != "g/master" {
				continue
			}
			moved[ev.Backend] += ev.Moved
			total += ev.Moved
		}
		if total == l.moved.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines add up to %d moves, the counter says %d:\n%s", total, l.moved.Load(), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if moved["10.0.0.1:6379"] != 4 || moved["10.0.0.2:6379"] != 1 || strings.Count(logs.String(), `"event":"sessions_moved"`) != 3 {
		t.Errorf("want 4 moves off .1 in two lines and 1 off .2 in one:\n%s", logs.String())
	}
}
