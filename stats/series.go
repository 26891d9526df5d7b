package stats

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// HistorySeries is a group's recent past as the page's charts draw it (/stats.json's history_series):
// one point per listener and sampling interval, and the bands of the stretches without a master and of
// the master switches, over the window From–To: the last hour at the default interval (360 samples),
// or since the proxy started if that is later.
type HistorySeries struct {
	IntervalSeconds float64          `json:"interval_seconds"`
	From            time.Time        `json:"from"`
	To              time.Time        `json:"to"`
	Listeners       []ListenerSeries `json:"listeners"`
	Bands           []Band           `json:"bands"` // oldest first
	// Multiplex is the group's shared backend connections over time (multiplex = true only, as the
	// group's multiplex object).
	Multiplex *MultiplexSeries `json:"multiplex,omitempty"`
}

// MultiplexSeries is a multiplexed group's shared backend connections, column by column as
// ListenerSeries: the connections open to its nodes at At[i] and the sessions that left one for a
// connection of their own, per second over the interval. The samples are taken with the master port's,
// so At is the end of the master port's At (all of it unless multiplexing began later).
type MultiplexSeries struct {
	At                        []time.Time `json:"at"`
	SharedConns               []int64     `json:"shared_backend_connections"`
	SessionsUnsharedPerSecond []float64   `json:"sessions_unshared_per_second"`
}

// ListenerSeries is one listener's samples, column by column: the i-th value of each list belongs to
// At[i], the end of its interval. Rates are per second over the interval.
type ListenerSeries struct {
	Name                        string      `json:"name"`
	Role                        string      `json:"role"`
	At                          []time.Time `json:"at"`
	SessionsPerSecond           []float64   `json:"sessions_per_second"`
	CurrentSessions             []int64     `json:"current_sessions"`
	Held                        []int64     `json:"held"`
	BytesInPerSecond            []float64   `json:"bytes_in_per_second"`
	BytesOutPerSecond           []float64   `json:"bytes_out_per_second"`
	RefusedPerSecond            []float64   `json:"refused_per_second"`
	ConnectErrorsPerSecond      []float64   `json:"connect_errors_per_second"`
	TLSHandshakeErrorsPerSecond []float64   `json:"tls_handshake_errors_per_second"`
}

// Band kinds.
const (
	BandNoMaster   = "no-master"  // the master port had no verified master
	BandFailover   = "failover"   // the master moved: from the first sign of trouble to the switch
	BandSwitchover = "switchover" // a planned switch (sentinel-proxy switchover)
)

// Band is a stretch of time the charts shade: a stretch without a master, or a master switch (from its
// first sign of trouble, when one was seen, to the switch).
type Band struct {
	Kind       string    `json:"kind"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Ongoing    bool      `json:"ongoing,omitempty"` // it lasts (no master, or a failover in progress); To is now
	Old        string    `json:"old"`
	New        string    `json:"new"` // "" while a stretch without a master lasts; the replica being promoted during a failover
	Trigger    string    `json:"trigger,omitempty"`
	DetectedBy string    `json:"detected_by,omitempty"`
	Reason     string    `json:"reason,omitempty"` // why there was no master
	NoMasterMS float64   `json:"no_master_ms,omitempty"`
}

// switchKind tells a planned switchover from a failover: the router marks the switch a switchover asked
// for; a trigger that starts with "switchover" is one too.
func switchKind(sw routing.Switch) string {
	if sw.Switchover || strings.HasPrefix(sw.Trigger, "switchover") {
		return BandSwitchover
	}
	return BandFailover
}

// historySeries builds the group's series for the window that ends at now; failover is the one in
// progress, nil when none.
func (s *Server) historySeries(g GroupPorts, failover *routing.Failover, now time.Time) *HistorySeries {
	every := s.sampleEvery()
	hs := &HistorySeries{IntervalSeconds: every.Seconds(), From: windowStart(now, s.Started, every), To: now,
		Listeners: []ListenerSeries{}}
	for _, p := range portsOf([]GroupPorts{g}) {
		if p.l == nil {
			continue
		}
		samples, _ := s.history.samples(p.l.Name)
		hs.Listeners = append(hs.Listeners, listenerSeries(p.l.Name, p.role, samples, hs.From))
	}
	if g.Multiplex != nil {
		var shared []sharedPoint
		if g.Master != nil {
			shared = s.history.sharedSamples(g.Master.Name)
		}
		hs.Multiplex = multiplexSeries(shared, hs.From)
	}
	var switches []routing.Switch
	var gaps []routing.NoMasterSpan
	if s.History != nil {
		switches = s.History(g.Name)
	}
	if s.NoMasterSpans != nil {
		gaps = s.NoMasterSpans(g.Name)
	}
	hs.Bands = bands(switches, gaps, failover, hs.From, now)
	return hs
}

// windowStart is where the charts begin: historyLen samples ago, or when the proxy started if that is
// later (a young proxy's charts are not an hour of nothing), but at least ten samples back.
func windowStart(now, started time.Time, every time.Duration) time.Time {
	from := now.Add(-historyLen * every)
	if started.After(from) {
		from = started
	}
	if latest := now.Add(-10 * every); from.After(latest) {
		from = latest
	}
	return from
}

func listenerSeries(name, role string, samples []sample, from time.Time) ListenerSeries {
	ls := ListenerSeries{Name: name, Role: role, At: []time.Time{}, SessionsPerSecond: []float64{},
		CurrentSessions: []int64{}, Held: []int64{}, BytesInPerSecond: []float64{}, BytesOutPerSecond: []float64{},
		RefusedPerSecond: []float64{}, ConnectErrorsPerSecond: []float64{}, TLSHandshakeErrorsPerSecond: []float64{}}
	for _, sm := range samples {
		at := time.Unix(0, sm.at).UTC()
		if at.Before(from) {
			continue
		}
		ls.At = append(ls.At, at.Truncate(time.Millisecond))
		ls.SessionsPerSecond = append(ls.SessionsPerSecond, round3(sm.sessions))
		ls.CurrentSessions = append(ls.CurrentSessions, int64(sm.current))
		ls.Held = append(ls.Held, int64(sm.held))
		ls.BytesInPerSecond = append(ls.BytesInPerSecond, round3(sm.bytesIn))
		ls.BytesOutPerSecond = append(ls.BytesOutPerSecond, round3(sm.bytesOut))
		ls.RefusedPerSecond = append(ls.RefusedPerSecond, round3(sm.refused))
		ls.ConnectErrorsPerSecond = append(ls.ConnectErrorsPerSecond, round3(sm.connectErrors))
		ls.TLSHandshakeErrorsPerSecond = append(ls.TLSHandshakeErrorsPerSecond, round3(sm.tlsErrors))
	}
	return ls
}

func multiplexSeries(samples []sharedPoint, from time.Time) *MultiplexSeries {
	ms := &MultiplexSeries{At: []time.Time{}, SharedConns: []int64{}, SessionsUnsharedPerSecond: []float64{}}
	for _, sm := range samples {
		at := time.Unix(0, sm.at).UTC()
		if at.Before(from) {
			continue
		}
		ms.At = append(ms.At, at.Truncate(time.Millisecond))
		ms.SharedConns = append(ms.SharedConns, int64(sm.conns))
		ms.SessionsUnsharedPerSecond = append(ms.SessionsUnsharedPerSecond, round3(sm.unshared))
	}
	return ms
}

// round3 keeps three decimals: a float32 widened as it is would print as 0.10000000149011612.
func round3(v float32) float64 { return math.Round(float64(v)*1000) / 1000 }

// bands are the switches (newest first, as History returns them), the stretches without a master
// (newest first) and the failover in progress (nil when none) that reach into [from, now], oldest first.
func bands(switches []routing.Switch, gaps []routing.NoMasterSpan, failover *routing.Failover, from, now time.Time) []Band {
	out := []Band{}
	if f := failover; f != nil && !f.Since.IsZero() {
		// Until it ends in a switch (a band of its own) or is given up, it lasts: from the leader's first step.
		out = append(out, Band{Kind: BandFailover, From: f.Since, To: now, Ongoing: true, Old: f.OldMaster,
			New: f.Promoting, Trigger: "Sentinel " + f.Leader + " at " + f.Stage})
	}
	for i := len(gaps) - 1; i >= 0; i-- {
		sp := gaps[i]
		b := Band{Kind: BandNoMaster, From: sp.Since, To: sp.Until, Old: sp.Old, New: sp.New, Reason: sp.Reason}
		if sp.Until.IsZero() {
			b.To, b.Ongoing = now, true
		}
		if !b.To.Before(from) {
			out = append(out, b)
		}
	}
	for i := len(switches) - 1; i >= 0; i-- {
		sw := switches[i]
		b := Band{Kind: switchKind(sw), From: sw.At, To: sw.At, Old: sw.Old, New: sw.New,
			Trigger: sw.Trigger, DetectedBy: sw.DetectedBy, NoMasterMS: msOf(sw.NoMaster)}
		if sw.DetectToSwitch > 0 {
			b.From = sw.At.Add(-sw.DetectToSwitch)
		}
		if !b.To.Before(from) {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out, func(a, b Band) int { return a.From.Compare(b.From) })
	return out
}

// describe is the band's hover text: what happened, when, between which masters.
func (b Band) describe() string {
	span := fmt.Sprintf("%s – %s UTC (%s)", b.From.UTC().Format("15:04:05.000"), b.To.UTC().Format("15:04:05.000"),
		roundDuration(b.To.Sub(b.From)))
	switch b.Kind {
	case BandNoMaster:
		after := "still none"
		if !b.Ongoing {
			after = "then " + b.New
			if b.New == b.Old {
				after = "then " + b.New + " again"
			}
		}
		return fmt.Sprintf("no master %s: %s; was %s, %s", span, b.Reason, b.Old, after)
	}
	if b.Ongoing {
		promoting := "no replica picked yet"
		if b.New != "" {
			promoting = "promoting " + b.New
		}
		return fmt.Sprintf("%s in progress since %s UTC (%s): old master %s, %s; %s", b.Kind,
			b.From.UTC().Format("15:04:05.000"), roundDuration(b.To.Sub(b.From)), b.Old, promoting, b.Trigger)
	}
	text := fmt.Sprintf("%s %s → %s at %s UTC", b.Kind, b.Old, b.New, b.To.UTC().Format("15:04:05.000"))
	if b.DetectedBy != "" {
		text += fmt.Sprintf("; first sign %s before (%s)", roundDuration(b.To.Sub(b.From)), b.DetectedBy)
	}
	if b.NoMasterMS > 0 {
		text += fmt.Sprintf("; no master for %s", roundDuration(time.Duration(b.NoMasterMS*float64(time.Millisecond))))
	}
	if b.Trigger != "" {
		text += "; trigger " + b.Trigger
	}
	return text
}
