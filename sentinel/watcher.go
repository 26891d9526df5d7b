package sentinel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// View is what one Sentinel said of one master group in one reconcile round.
type View struct {
	Sentinel    string
	MasterName  string
	AskedAt     time.Time // when the query started: the view says nothing of events received after it
	At          time.Time // when the answer was complete
	Err         error     // non-nil when the Sentinel could not be asked; the other fields are then empty
	Tilt        bool      // the Sentinel is in TILT mode and its word should not be trusted
	MasterAddr  string
	ConfigEpoch int64
	MasterFlags string // e.g. "master", "s_down,master", "o_down,master", "master,failover_in_progress"
	// FailedOver is set when GET-MASTER-ADDR-BY-NAME already names the promoted replica while SENTINEL
	// MASTER still describes the old master: the leader's view late in a failover (reconf-slaves).
	FailedOver bool
	Replicas   []Replica
	Peers      []string // the other Sentinels this one knows for the master (SENTINEL SENTINELS)
	// DownAfter is the master's down-after-milliseconds on this Sentinel: how long it must go unanswered
	// before this Sentinel judges it down. Zero when the Sentinel did not say.
	DownAfter time.Duration
}

// FailoverInProgress reports whether this Sentinel is itself running a failover of the master.
func (v View) FailoverInProgress() bool {
	return strings.Contains(v.MasterFlags, "failover_in_progress")
}

// Replica is one replica as a Sentinel lists it in SENTINEL REPLICAS.
type Replica struct {
	Addr       string
	Flags      string // e.g. "slave", "s_down,slave", "slave,disconnected"
	LinkStatus string // master-link-status: "ok" or "err"
	// NeverPromoted is set for a replica with replica-priority 0, which Sentinel never promotes.
	NeverPromoted bool
}

// Down reports whether the Sentinel considers the replica unusable: judged down (SDown), or its link to it
// disconnected (Sentinel promotes no such replica).
func (r Replica) Down() bool {
	return r.SDown() || strings.Contains(r.Flags, "disconnected")
}

// SDown reports whether the Sentinel judges the replica down: s_down (no valid reply for
// down-after-milliseconds) or o_down. "disconnected" alone is not that: it says only that the Sentinel is
// re-opening its own connection to the node, as it does when its pub/sub link has carried no hello for
// 6 s (3 × its 2 s hello period), so during any stall of 6 s or more; while a script keeps the node
// -BUSY, its SUBSCRIBE is refused and the flag stays until the script ends.
func (r Replica) SDown() bool {
	return strings.Contains(r.Flags, "s_down") || strings.Contains(r.Flags, "o_down")
}

// Options configure a Watcher. Zero durations pick the defaults noted.
type Options struct {
	Addr     string
	Username string
	Password string
	Masters  []string      // master names to follow
	Interval time.Duration // reconcile period; default 1s
	Timeout  time.Duration // per command; default 1s
	// MaxBackoff caps the wait between attempts on an unreachable Sentinel; default 5s.
	MaxBackoff time.Duration
	OnView     func(View)  // called from the watcher's goroutines; must not block for long
	OnEvent    func(Event) // likewise
	Log        zerolog.Logger
	// TLS, if set, encrypts the connections to the Sentinel ([sentinel.tls]).
	TLS *tls.Config
}

// Watcher follows one Sentinel: a reconcile loop and a pub/sub subscription.
type Watcher struct {
	opts      Options
	client    *redis.SentinelClient
	reconcile chan struct{}

	mu        sync.Mutex
	reachable bool
	known     bool
}

// NewWatcher prepares a watcher; nothing connects until Run.
func NewWatcher(o Options) *Watcher {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	client := redis.NewSentinelClient(&redis.Options{
		Addr:            o.Addr,
		Username:        o.Username,
		Password:        o.Password,
		DialTimeout:     o.Timeout,
		ReadTimeout:     o.Timeout,
		WriteTimeout:    o.Timeout,
		MaxRetries:      -1, // the reconcile loop retries, with backoff
		DialerRetries:   1,
		Dialer:          dialGuarded(o.Timeout, o.TLS),
		PoolSize:        2,
		Protocol:        2,
		DisableIdentity: true,
	})
	return &Watcher{opts: o, client: client, reconcile: make(chan struct{}, 1)}
}

// Run reconciles and listens until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	defer w.client.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.subscribeLoop(ctx) }()
	w.reconcileLoop(ctx)
	wg.Wait()
}

// ReconcileNow asks for a reconcile round at once, e.g. after an event that needs confirming.
func (w *Watcher) ReconcileNow() {
	select {
	case w.reconcile <- struct{}{}:
	default:
	}
}

func (w *Watcher) reconcileLoop(ctx context.Context) {
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-w.reconcile:
			timer.Stop()
		}
		ok := w.reconcileOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := w.opts.Interval
		if ok {
			failures = 0
		} else {
			failures++
			wait = backoff(w.opts.Interval, w.opts.MaxBackoff, failures)
		}
		timer.Reset(wait)
	}
}

// backoff doubles the wait after each consecutive failure, up to max.
func backoff(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// reconcileOnce asks about every master and reports a View for each. It returns false when the
// Sentinel could not be reached.
func (w *Watcher) reconcileOnce(ctx context.Context) bool {
	views, err := w.Ask(ctx)
	w.setReachable(err == nil, err)
	for _, v := range views {
		w.opts.OnView(v)
	}
	return err == nil
}

// Ask queries the Sentinel once about every master and returns a View for each, with Err set on each
// when the Sentinel cannot be reached (the returned error then says so too).
func (w *Watcher) Ask(ctx context.Context) ([]View, error) {
	tilt, err := w.tilt(ctx)
	views := make([]View, 0, len(w.opts.Masters))
	if err != nil {
		now := time.Now()
		for _, name := range w.opts.Masters {
			views = append(views, View{Sentinel: w.opts.Addr, MasterName: name, At: now, Err: err})
		}
		return views, err
	}
	for _, name := range w.opts.Masters {
		v := w.view(ctx, name)
		v.Tilt = tilt
		views = append(views, v)
	}
	return views, nil
}

// Close releases the connections of a watcher that was used with Ask and never Run.
func (w *Watcher) Close() error { return w.client.Close() }

func (w *Watcher) tilt(ctx context.Context) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	cmd := redis.NewStringCmd(cctx, "info", "sentinel")
	if err := w.client.Process(cctx, cmd); err != nil {
		return false, fmt.Errorf("sentinel %s: INFO sentinel: %w", w.opts.Addr, err)
	}
	return strings.Contains(cmd.Val(), "sentinel_tilt:1"), nil
}

// viewAttempts is how many times view reads a Sentinel whose answers changed between its queries.
const viewAttempts = 3

// view asks the Sentinel how it sees the master group name. Its queries are separate commands, and the
// Sentinel's configuration can change between them (a +switch-master applied from a peer's hello): a
// view whose GET-MASTER-ADDR-BY-NAME still names the old master while SENTINEL MASTER already carries
// the new epoch would name the old master with the new epoch, and the routing would follow it back. Such
// a torn view is read again; one still torn after viewAttempts is reported as an error.
func (w *Watcher) view(ctx context.Context, name string) View {
	cctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	var v View
	for range viewAttempts {
		var again bool
		if v, again = w.viewOnce(cctx, name); !again {
			return v
		}
	}
	v.Err = fmt.Errorf("sentinel %s: %s: its configuration changed while it was read, %d times", w.opts.Addr, name, viewAttempts)
	return v
}

// viewOnce reads the Sentinel's view once; isTorn reports answers from before and after a change.
func (w *Watcher) viewOnce(cctx context.Context, name string) (v View, isTorn bool) {
	v = View{Sentinel: w.opts.Addr, MasterName: name, AskedAt: time.Now()}
	fail := func(step string, err error) (View, bool) {
		v.At = time.Now()
		v.Err = fmt.Errorf("sentinel %s: %s %s: %w", w.opts.Addr, step, name, err)
		return v, false
	}
	addr, err := w.client.GetMasterAddrByName(cctx, name).Result()
	if errors.Is(err, redis.Nil) {
		return fail("GET-MASTER-ADDR-BY-NAME", fmt.Errorf("this Sentinel does not monitor a master named %q", name))
	}
	if err != nil {
		return fail("GET-MASTER-ADDR-BY-NAME", err)
	}
	if len(addr) != 2 {
		return fail("GET-MASTER-ADDR-BY-NAME", fmt.Errorf("want [ip port], got %d fields", len(addr)))
	}
	v.MasterAddr = net.JoinHostPort(addr[0], addr[1])
	master, err := w.client.Master(cctx, name).Result()
	if err != nil {
		return fail("SENTINEL MASTER", err)
	}
	v.MasterFlags = master["flags"]
	if ms, err := strconv.ParseInt(master["down-after-milliseconds"], 10, 64); err == nil && ms > 0 {
		v.DownAfter = time.Duration(ms) * time.Millisecond
	}
	v.FailedOver = net.JoinHostPort(master["ip"], master["port"]) != v.MasterAddr
	if torn(v) {
		return v, true
	}
	if v.ConfigEpoch, err = strconv.ParseInt(master["config-epoch"], 10, 64); err != nil {
		return fail("SENTINEL MASTER", fmt.Errorf("config-epoch %q: %w", master["config-epoch"], err))
	}
	replicas, err := w.client.Replicas(cctx, name).Result()
	if err != nil {
		return fail("SENTINEL REPLICAS", err)
	}
	for _, r := range replicas {
		if r["ip"] == "" || r["port"] == "" {
			continue
		}
		v.Replicas = append(v.Replicas, Replica{
			Addr:       net.JoinHostPort(r["ip"], r["port"]),
			Flags:      r["flags"],
			LinkStatus: r["master-link-status"],
			// Sentinel names the field slave-priority in every version so far.
			NeverPromoted: r["slave-priority"] == "0" || r["replica-priority"] == "0",
		})
	}
	peers, err := w.client.Sentinels(cctx, name).Result()
	if err != nil {
		return fail("SENTINEL SENTINELS", err)
	}
	for _, p := range peers {
		if p["ip"] != "" && p["port"] != "" {
			v.Peers = append(v.Peers, net.JoinHostPort(p["ip"], p["port"]))
		}
	}
	v.At = time.Now()
	return v, false
}

// torn reports a view read across a configuration change: GET-MASTER-ADDR-BY-NAME names another node
// than SENTINEL MASTER, which Sentinel answers only while it runs a failover that has promoted a replica
// (failover_in_progress); without that flag the address came from before a switch and the record from
// after it.
func torn(v View) bool { return v.FailedOver && !v.FailoverInProgress() }

func (w *Watcher) setReachable(ok bool, err error) {
	w.mu.Lock()
	changed := !w.known || w.reachable != ok
	w.known, w.reachable = true, ok
	w.mu.Unlock()
	if !changed {
		return
	}
	if ok {
		w.opts.Log.Info().Str("event", "sentinel_connected").Str("sentinel", w.opts.Addr).Msg("Sentinel reachable")
	} else {
		w.opts.Log.Warn().Str("event", "sentinel_lost").Str("sentinel", w.opts.Addr).Err(err).
			Msg("Sentinel unreachable; retrying with backoff")
	}
}

// subscribeLoop keeps a subscription to every event of the Sentinel. go-redis reconnects and
// resubscribes by itself; each (re)subscription triggers a reconcile, since events may have been missed
// while it was down.
func (w *Watcher) subscribeLoop(ctx context.Context) {
	ps := w.client.PSubscribe(ctx, Pattern)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(
		redis.WithChannelHealthCheckInterval(w.opts.Interval),
		redis.WithChannelPingTimeout(w.opts.Timeout),
		redis.WithChannelReconnectTimeout(w.opts.Timeout),
		redis.WithChannelSendTimeout(time.Second),
	)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "psubscribe" {
					w.opts.Log.Debug().Str("sentinel", w.opts.Addr).Msg("subscribed to Sentinel events")
					w.ReconcileNow()
				}
			case *redis.Message:
				w.handleMessage(m.Channel, m.Payload)
			}
		}
	}
}

func (w *Watcher) handleMessage(channel, payload string) {
	ev, err := ParseEvent(w.opts.Addr, channel, payload, time.Now())
	if err != nil {
		w.opts.Log.Warn().Str("event", "sentinel_bad_message").Str("sentinel", w.opts.Addr).
			Err(err).Msg("ignoring malformed Sentinel message")
		return
	}
	if ev.MasterName != "" && !w.follows(ev.MasterName) {
		return
	}
	if ev.MasterName == "" && channel != "+tilt" && channel != "-tilt" {
		return // +new-epoch and the like: nothing to act on
	}
	if channel == "+switch-master" {
		// The announcement carries no config epoch; ask this Sentinel at once so the routing can weigh
		// it against what the others say (Sentinels have published wrong switch info, redis#12798).
		w.ReconcileNow()
	}
	w.opts.OnEvent(ev)
}

func (w *Watcher) follows(name string) bool {
	for _, m := range w.opts.Masters {
		if m == name {
			return true
		}
	}
	return false
}
