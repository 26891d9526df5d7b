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

// Pattern is what the proxy subscribes to on every Sentinel: all of its events. Besides the ones the
// routing acts on (+switch-master, +odown/-odown, +sdown/-sdown, +failover-end, +convert-to-slave, +slave,
// +slave-reconf-done, +config-update-from, +tilt/-tilt, +reset-master), the failover state machine's own
// steps (+failover-state-send-slaveof-noone, +failover-state-wait-promotion, +promoted-slave,
// -failover-abort-*) let the proxy stop writes to the old master before the replica is promoted.
const Pattern = "*"

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
	case "+tilt", "-tilt", "+new-epoch", "+vote-for-leader":
		return ev, nil // no instance in the payload
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
	if len(f) > 0 && f[0] == "sentinel" {
		// About another Sentinel (+sentinel, +config-update-from): only the master part matters here.
		if len(f) >= 8 && f[4] == "@" && validPort(f[7]) {
			ev.InstanceType, ev.MasterName, ev.MasterAddr = "sentinel", f[5], net.JoinHostPort(f[6], f[7])
			if validPort(f[3]) {
				ev.Addr = net.JoinHostPort(f[2], f[3])
			}
			return ev, nil
		}
		return ev, fmt.Errorf("%s: malformed sentinel event: %q", channel, clip(payload))
	}
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
