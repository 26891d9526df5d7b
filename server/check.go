package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

// Check is the `check` command: it asks every Sentinel once and probes every node they name once, then
// prints to out what the proxy would do. It returns an error when anything would stop the proxy from
// routing correctly (the report says what; the command exits 1).
func Check(ctx context.Context, cfg *config.Config, out io.Writer) error {
	names := masterNames(cfg)
	timeout := cfg.Check.Timeout.Duration
	state := routing.NewState(names, 1, 1)

	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, addr := range cfg.Sentinel.Addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := sentinel.NewWatcher(sentinel.Options{Addr: addr, Username: cfg.Sentinel.Username,
				Password: cfg.Sentinel.Password, Masters: names, Timeout: timeout, Log: zerolog.Nop(), TLS: sentinelTLS(cfg)})
			defer w.Close()
			views, _ := w.Ask(ctx)
			mu.Lock()
			defer mu.Unlock()
			for _, v := range views {
				state.Apply(routing.ViewInput{View: v})
			}
		}()
	}
	wg.Wait()

	// Probe every node any Sentinel mentions, then decide with rise = fall = 1: one probe is all there is.
	prober := newProber(cfg)
	nodes := map[string]bool{}
	for _, g := range routing.Decide(state, names, time.Now()).Groups {
		for _, n := range g.Nodes {
			nodes[n.Addr] = true
		}
		if g.Named != "" {
			nodes[g.Named] = true
		}
	}
	results := make(chan check.Result, len(nodes))
	for addr := range nodes {
		go func() { results <- prober.Probe(ctx, addr) }()
	}
	for range nodes {
		state.Apply(routing.ProbeInput{Result: <-results})
	}
	snap := routing.Decide(state, names, time.Now())
	masters := map[string]config.Master{}
	for _, m := range cfg.Masters {
		masters[m.Name] = m
	}
	problems := printCheck(out, snap, masters)
	if len(problems) > 0 {
		fmt.Fprintf(out, "\nPROBLEMS (%d):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintln(out, "  -", p)
		}
		return errors.New("check failed")
	}
	fmt.Fprintln(out, "\nOK: every group has a verified master; every node and Sentinel is healthy")
	return nil
}

// printCheck writes the tables and returns every problem found.
func printCheck(out io.Writer, snap *routing.Snapshot, masters map[string]config.Master) []string {
	var problems []string
	for _, g := range snap.Groups {
		fmt.Fprintf(out, "== %s (mode %s)\n", g.Name, modeName(masters[g.Name].SessionMode()))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SENTINEL\tREACHABLE\tTILT\tNAMES MASTER\tEPOCH\tERROR")
		sort.Slice(g.Sentinels, func(i, j int) bool { return g.Sentinels[i].Addr < g.Sentinels[j].Addr })
		for _, s := range g.Sentinels {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Addr, yesNo(s.Reachable), yesNo(s.Tilt), dash(s.MasterAddr), s.ConfigEpoch, dash(s.Err))
			switch {
			case !s.Reachable:
				what := "unreachable"
				if refusedByACL(s.Err) {
					what = "refuses the proxy's credentials or ACL user"
				}
				problems = append(problems, fmt.Sprintf("%s: Sentinel %s %s: %s", g.Name, s.Addr, what, s.Err))
			case s.Tilt:
				problems = append(problems, fmt.Sprintf("%s: Sentinel %s is in TILT mode", g.Name, s.Addr))
			case s.MasterAddr != g.Named:
				problems = append(problems, fmt.Sprintf("%s: Sentinel %s names %s, the others %s", g.Name, s.Addr, s.MasterAddr, g.Named))
			}
		}
		tw.Flush()
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tROLE BY SENTINEL\tROLE BY PROBE\tLINK STATUS\tCHECK\tVERDICT")
		for _, n := range g.Nodes {
			link := "-"
			if n.ProbeRole() == "slave" {
				link = n.LastOK.Replication.MasterLinkStatus
			}
			checkText := string(n.Last.Status) + " " + n.Last.Duration.Round(10*time.Microsecond).String()
			if !n.Last.OK() {
				checkText = string(n.Last.Status) + " " + n.Last.Reason()
			}
			if n.Stall != "" {
				checkText = string(n.Last.Status) + " " + routing.StallText(n.Stall) + " (alive)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Addr, dash(n.SentinelRole+flagsSuffix(n.SentinelFlags)),
				dash(n.ProbeRole()), link, checkText, strings.ToUpper(n.Verdict))
			switch n.Verdict {
			case "master", "replica":
			default:
				reason := n.Last.Reason()
				if n.Last.Err != nil {
					reason += ": " + n.Last.Err.Error()
				}
				problems = append(problems, fmt.Sprintf("%s: node %s: %s (%s)", g.Name, n.Addr, n.Verdict, reason))
			}
		}
		tw.Flush()
		if g.Master == "" {
			problems = append(problems, fmt.Sprintf("%s: no verified master: %s", g.Name, g.NoMasterReason))
			fmt.Fprintf(out, "master port: REFUSES CLIENTS (%s)\n", g.NoMasterReason)
		} else {
			fmt.Fprintf(out, "master port -> %s\n", g.Master)
		}
		if g.ReplicaFallback {
			fmt.Fprintf(out, "replica port -> %s (no healthy replica: reads go to the master)\n", g.Master)
			problems = append(problems, fmt.Sprintf("%s: no healthy replica", g.Name))
		} else if len(g.Replicas) > 0 {
			fmt.Fprintf(out, "replica port -> %s\n", strings.Join(g.Replicas, ", "))
		}
		if m := masters[g.Name]; m.WaitReplicas > 0 {
			problems = append(problems, printDurability(out, g, m)...)
		}
		fmt.Fprintln(out)
	}
	return problems
}

// printDurability says whether the group's replicas can confirm writes within wait_timeout: those its
// master lists online and acknowledging within the last second (INFO replication), against
// wait_replicas. Fewer, and every write through the master port would get NOREPLICAS.
func printDurability(out io.Writer, g routing.GroupSnapshot, m config.Master) []string {
	var keeping []string
	for _, n := range g.Nodes {
		if n.Addr != g.Master {
			continue
		}
		for _, r := range n.LastOK.Replication.Replicas {
			if r.State == "online" && r.Lag <= 1 {
				keeping = append(keeping, r.Addr)
			}
		}
	}
	fmt.Fprintf(out, "durable acknowledgements: wait_replicas = %d (wait_timeout %s): %d replica(s) online and acknowledging",
		m.WaitReplicas, m.WaitFor(), len(keeping))
	if len(keeping) > 0 {
		fmt.Fprintf(out, " (%s)", strings.Join(keeping, ", "))
	}
	fmt.Fprintln(out)
	if g.Master != "" && len(keeping) < m.WaitReplicas {
		return []string{fmt.Sprintf("%s: wait_replicas = %d but %d replica(s) of %s are online and acknowledging: every write would get NOREPLICAS",
			g.Name, m.WaitReplicas, len(keeping), g.Master)}
	}
	return nil
}

func flagsSuffix(flags string) string {
	if flags == "" || flags == "master" || flags == "slave" {
		return ""
	}
	return " (" + flags + ")"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// refusedByACL tells an answer that refuses the proxy's user (wrong password, missing permission) from
// a Sentinel that cannot be reached: the fix is in the ACL or the config, not the network.
func refusedByACL(err string) bool {
	for _, code := range []string{"NOPERM", "NOAUTH", "WRONGPASS", "ERR AUTH", "invalid username-password"} {
		if strings.Contains(err, code) {
			return true
		}
	}
	return false
}
