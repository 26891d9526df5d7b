package eventloop

import (
	"net"
	"testing"
	"time"
)

// dialResult is what a test's DialHandler was told.
type dialResult struct {
	fd  int
	err error
}

type dialRecorder chan dialResult

func (r dialRecorder) Dialed(fd int, err error) { r <- dialResult{fd, err} }

func testLoop(t *testing.T) *Loop {
	t.Helper()
	ls, err := New(Options{Loops: 1})
	if err != nil {
		t.Skipf("no event loops here: %v", err)
	}
	t.Cleanup(ls.Close)
	return ls.All()[0]
}

// dialOn starts a Dial on lp and returns what its handler is told.
func dialOn(t *testing.T, lp *Loop, addr string, timeout time.Duration) (dialRecorder, *Dialing) {
	t.Helper()
	got := make(dialRecorder, 1)
	var d *Dialing
	var err error
	done := make(chan struct{})
	lp.Post(func() { d, err = lp.Dial(addr, timeout, got); close(done) })
	<-done
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	return got, d
}

func (r dialRecorder) wait(t *testing.T) dialResult {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was never told")
		return dialResult{}
	}
}

// TestDialConnectsIPsAndHostNames: an IP literal and a host name both connect, the name resolved off
// the loop; the socket comes registered, and what the server sent meanwhile is readable.
func TestDialConnectsIPsAndHostNames(t *testing.T) {
	lp := testLoop(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			defer c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, addr := range []string{ln.Addr().String(), net.JoinHostPort("localhost", port)} {
		got, _ := dialOn(t, lp, addr, time.Second)
		res := got.wait(t)
		if res.err != nil {
			t.Fatalf("%s: %v", addr, res.err)
		}
		buf := make([]byte, 2)
		deadline := time.Now().Add(5 * time.Second)
		var n int
		for n == 0 && time.Now().Before(deadline) {
			done := make(chan struct{})
			lp.Post(func() { n, _ = Read(res.fd, buf); close(done) })
			<-done
			time.Sleep(time.Millisecond)
		}
		if string(buf[:n]) != "hi" {
			t.Fatalf("%s: read %q", addr, buf[:n])
		}
		lp.Post(func() { lp.Forget(res.fd); Close(res.fd) })
	}
}

// TestDialFailures: a refused connect, a name that does not resolve and a connect that outlasts its
// timeout each end with an error; a cancelled one says nothing.
func TestDialFailures(t *testing.T) {
	lp := testLoop(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	for _, addr := range []string{dead, "no-such-host.invalid:6379"} {
		got, _ := dialOn(t, lp, addr, 2*time.Second)
		if res := got.wait(t); res.err == nil {
			t.Errorf("%s: connected", addr)
		}
	}

	// A name whose resolution outlasts the timeout: the timer (or the resolver's own deadline) ends it.
	start := time.Now()
	got, _ := dialOn(t, lp, "no-such-host.invalid:6379", time.Nanosecond)
	if res := got.wait(t); res.err == nil || time.Since(start) > time.Second {
		t.Errorf("timeout: %v after %s", res.err, time.Since(start))
	}

	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln2.Close()
	got = make(dialRecorder, 1)
	lp.Post(func() { // in the loop's turn that started it, before its connect can end
		d, err := lp.Dial(ln2.Addr().String(), time.Second, got)
		if err != nil {
			t.Error(err)
			return
		}
		d.Cancel()
	})
	select {
	case res := <-got:
		t.Fatalf("a cancelled dial told its handler %+v", res)
	case <-time.After(100 * time.Millisecond):
	}
}
