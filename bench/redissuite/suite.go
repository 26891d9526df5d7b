package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Suite is a Redis source tree that holds the test suite: runtest, tests/, and src/ for the binaries a few
// tests run themselves.
type Suite struct {
	Dir string
}

// OpenSuite checks that dir holds the suite and that the binaries it runs are reachable from src/.
func OpenSuite(dir string) (*Suite, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"runtest", "tests/test_helper.tcl"} {
		if _, err := os.Stat(filepath.Join(abs, f)); err != nil {
			return nil, fmt.Errorf("redis test suite in %s: %w (make redis-suite-src fetches it)", abs, err)
		}
	}
	if _, err := exec.LookPath("tclsh8.6"); err != nil {
		return nil, fmt.Errorf("runtest needs tclsh8.6 (apt-get install tcl): %w", err)
	}
	s := &Suite{Dir: abs}
	if err := s.linkBinaries(); err != nil {
		return nil, err
	}
	return s, nil
}

// linkBinaries makes src/redis-server and its siblings point at the installed binaries. Even against an
// external server, a few tests run them (introspection's "redis-server command line arguments", acl's
// duplicate-user check), and a Debian source package has only the C files there. A built checkout
// keeps its own binaries.
func (s *Suite) linkBinaries() error {
	for _, name := range []string{"redis-server", "redis-cli", "redis-benchmark", "redis-check-aof", "redis-check-rdb", "redis-sentinel"} {
		link := filepath.Join(s.Dir, "src", name)
		if _, err := os.Lstat(link); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		target, err := exec.LookPath(name)
		if err != nil {
			return fmt.Errorf("the suite runs %s: %w", name, err)
		}
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("link %s: %w", link, err)
		}
	}
	return nil
}

// Units lists the units runtest runs when it is given none (its ::all_tests).
func (s *Suite) Units() ([]string, error) {
	cmd := exec.Command("./runtest", "--list-tests")
	cmd.Dir = s.Dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("runtest --list-tests: %w", err)
	}
	units := strings.Fields(string(out))
	if len(units) == 0 {
		return nil, errors.New("runtest --list-tests listed nothing")
	}
	return units, nil
}

// DefaultTags is runtest's --tags for a run against a Sentinel-watched master; see Args.
const DefaultTags = "-slow -needs:repl"

// Args is runtest's command line for one run against the server (or proxy) at port.
//
// What an external run needs to mean something, as Redis's own CI runs it against an external server
// (.github/workflows/external.yml: a server with enable-debug-command, enable-protected-configs and
// enable-module-command, and `runtest --host --port --tags -slow`):
//   - --host makes runtest use the server it is given (::external): tests tagged external:skip (those that
//     start their own servers, restart or kill them, read their log) are left out by runtest itself.
//   - --tags (DefaultTags): -slow, as that CI job: slow tests (fuzzers, big-data loops) take minutes
//     each. And -needs:repl: those tests read the master's replication stream (SYNC) and expect exactly
//     the commands they sent, but every Sentinel PUBLISHes its hello on the master every 2 seconds, and
//     the stream carries it; they fail at random on every path (a few such tests lack the tag, e.g.
//     expire's "RANDOMKEY: Lazy-expire should not be wrapped in MULTI/EXEC": Confirm sorts those out,
//     as it does pub/sub tests that PSUBSCRIBE * and get a hello). The other needs:* tags name what the
//     server must allow (DEBUG, SAVE, CONFIG SET of maxmemory, RESETSTAT, RESET, PFDEBUG, latency
//     tracking, a local process); the topology's master allows all of it, directly and through a proxy
//     that forwards every command, so they stay.
//   - --durable: a Tcl error inside a test (a connection closed under it, say) becomes that test's [err]
//     and the unit goes on, instead of an exception that ends the whole run. Through a proxy such errors
//     are what this runner looks for.
//   - --timeout: runtest gives up after this long without a test finishing (default 20 minutes); a test
//     that hangs through a proxy costs that much, and the runner then resumes after the unit.
//   - --clients 1: in external mode runtest starts exactly one test client whatever --clients says
//     (test_server_main), so units run one after another either way (measured: the same time with 4).
//     It is pinned anyway: units side by side on one server would FLUSHALL each other's keys.
//
// Not used: --singledb (the master has 16 databases; a proxy must forward SELECT), --ignore-encoding and
// --ignore-digest (the server is a real Redis), --large-memory (tests over 100 MB; off in Redis's CI too),
// --accurate (more fuzzing iterations), --cluster-mode.
func (s *Suite) Args(port int, units []string, tags string, timeout time.Duration) []string {
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--tags", tags, "--durable",
		"--timeout", strconv.Itoa(int(timeout.Seconds())), "--clients", "1"}
	for _, u := range units {
		args = append(args, "--single", u)
	}
	return args
}
