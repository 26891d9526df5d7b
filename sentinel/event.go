// Package sentinel talks to Redis Sentinels: it asks each one, every interval, what it knows of the
// configured masters (SENTINEL GET-MASTER-ADDR-BY-NAME, MASTER, REPLICAS) and forwards the failover
// events each one publishes. It reports what Sentinels say and decides nothing: the routing decision
// belongs to the routing package.
package sentinel

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Channels are the Sentinel pub/sub channels the proxy follows.
var Channels = []string{
	"+switch-master",
	"+odown", "-odown", "+sdown", "-sdown",
	"+failover-end", "+failover-state-wait-promotion", "+promoted-slave",
	"+convert-to-slave", "+slave", "+slave-reconf-done",
	"+config-update-from", "+tilt", "-tilt", "+reset-master",
}

// Event is one message a Sentinel published.
type Event struct {
	Sentinel string    // address of the Sentinel that published it
	Channel  string    // e.g. "+switch-master"
	At       time.Time // when the proxy received it
	Payload  string    // the raw message

	// For "<instance-type> <name> <ip> <port> @ <master-name> <master-ip> <master-port>" messages.
	InstanceType string // master, slave or sentinel; empty for +switch-master and +tilt
	Addr         string // the instance the event is about
	MasterName   string // the master group it belongs to
	MasterAddr   string // that group's master as the Sentinel saw it when it published

	// For +switch-master only.
	OldAddr string
	NewAddr string
}

// ParseEvent parses a message from one of Channels. TILT messages carry no instance and parse with
// just Channel and Payload set. Anything malformed is an error, never a panic.
func ParseEvent(sentinel, channel, payload string, at time.Time) (Event, error) {
	ev := Event{Sentinel: sentinel, Channel: channel, At: at, Payload: payload}
	f := strings.Fields(payload)
	switch channel {
	case "+tilt", "-tilt":
		return ev, nil
	case "+switch-master":
		// <master name> <oldip> <oldport> <newip> <newport>
		if len(f) != 5 {
			return ev, fmt.Errorf("%s: want 5 fields, got %d: %q", channel, len(f), clip(payload))
		}
		ev.MasterName = f[0]
		ev.OldAddr = net.JoinHostPort(f[1], f[2])
		ev.NewAddr = net.JoinHostPort(f[3], f[4])
		if !validPort(f[2]) || !validPort(f[4]) {
			return ev, fmt.Errorf("%s: bad port in %q", channel, clip(payload))
		}
		ev.MasterAddr = ev.NewAddr
		ev.InstanceType = "master"
		ev.Addr = ev.NewAddr
		return ev, nil
	}
	// <instance-type> <name> <ip> <port> [@ <master-name> <master-ip> <master-port>] [extra ...]
	if len(f) < 4 {
		return ev, fmt.Errorf("%s: want at least 4 fields, got %d: %q", channel, len(f), clip(payload))
	}
	ev.InstanceType = f[0]
	if !validPort(f[3]) {
		return ev, fmt.Errorf("%s: bad port in %q", channel, clip(payload))
	}
	ev.Addr = net.JoinHostPort(f[2], f[3])
	if ev.InstanceType == "master" {
		ev.MasterName = f[1]
		ev.MasterAddr = ev.Addr
		return ev, nil
	}
	if len(f) >= 8 && f[4] == "@" {
		if !validPort(f[7]) {
			return ev, fmt.Errorf("%s: bad master port in %q", channel, clip(payload))
		}
		ev.MasterName = f[5]
		ev.MasterAddr = net.JoinHostPort(f[6], f[7])
		return ev, nil
	}
	return ev, fmt.Errorf("%s: %s event without \"@ <master>\": %q", channel, ev.InstanceType, clip(payload))
}

func validPort(s string) bool {
	if len(s) == 0 || len(s) > 5 {
		return false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n > 0 && n <= 65535
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
