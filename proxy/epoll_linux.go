//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NewEngine returns the epoll engine (see EngineOptions). Call Close when every listener using it has
// stopped.
//
// A busy loop sleeps in epoll_wait while holding one of the runtime's Ps (see loop.wait), so the engine
// adds one P per loop to GOMAXPROCS while it is open: the rest of the process keeps the share it had.
func NewEngine(opts EngineOptions) (Engine, error) {
	loops := opts.Loops
	if max := runtime.GOMAXPROCS(0); loops <= 0 || loops > max {
		loops = max
	}
	e := &Epoll{}
	for i := 0; i < loops; i++ {
		lp, err := newLoop()
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("epoll engine: %w", err)
		}
		e.loops = append(e.loops, lp)
	}
	e.procs = loops
	addProcs(loops)
	started := make(chan error, loops)
	for _, lp := range e.loops {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); lp.run(opts.BatchScheduling, started) }()
	}
	var errs []error
	for range e.loops {
		if err := <-started; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		e.Close()
		return nil, fmt.Errorf("epoll engine: %w", errors.Join(errs...))
	}
	return e, nil
}

// extraProcs serialises the read-modify-write of GOMAXPROCS by engines: the setting is the runtime's,
// process-wide, and two engines opened at once (tests) must not lose one another's change.
var extraProcs sync.Mutex

func addProcs(n int) {
	if n == 0 {
		return
	}
	extraProcs.Lock()
	defer extraProcs.Unlock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
}

// Epoll is the Linux engine: a few event loops, each owning an epoll instance, with both legs of a
// session in the same loop. Sockets are edge-triggered; bytes are read into the loop's buffer and
// written straight to the peer; a short write keeps only the remainder and pauses the source until
// the peer drains, so a slow reader never makes the proxy buffer without bound.
type Epoll struct {
	loops []*loop
	procs int // Ps added to GOMAXPROCS, given back by Close
	next  atomic.Uint64
	wg    sync.WaitGroup
	once  sync.Once
}

// Name implements Engine.
func (e *Epoll) Name() string { return "epoll" }

// Close stops the loops; sessions still open are closed.
func (e *Epoll) Close() {
	e.once.Do(func() {
		for _, lp := range e.loops {
			lp.post(command{kind: cmdStop})
		}
		e.wg.Wait()
		addProcs(-e.procs)
	})
}

func (e *Epoll) forward(ctx context.Context, l *Listener, a *admission, route *Route) {
	fd, err := detach(a.client)
	if err != nil {
		// Out of file descriptors, most likely: the portable engine may still manage.
		Portable.forward(ctx, l, a, route)
		return
	}
	lp := e.loops[e.next.Add(1)%uint64(len(e.loops))]
	lp.post(command{kind: cmdConnect, conn: &pendingConn{ctx: ctx, l: l, a: a, route: route, fd: fd}})
}

// detach takes the socket out of Go's netpoller: it duplicates the descriptor for the loop and closes
// the net.Conn (which removes the original from Go's epoll).
func detach(c net.Conn) (int, error) {
	sc, ok := c.(syscallConner)
	if !ok {
		return -1, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	c.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

type syscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// reattach turns a loop-owned descriptor back into a net.Conn, for the rare paths that leave the
// loop (a failed connect that is retried or refused).
// It takes fd over: fd is closed on return, whatever the outcome. When no descriptor is left for the
// net.Conn (EMFILE), the client is told so on fd itself before it is closed.
func reattach(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "client")
	defer f.Close()
	conn, err := net.FileConn(f)
	if err != nil {
		refuseFD(fd, fmt.Sprintf("%s is out of file descriptors; try again later", name))
	}
	return conn, err
}

// refuseFD writes a refusal line on a non-blocking socket the loop owns, without a net.Conn: what the
// client sent is drained first, so the close that follows sends a FIN, not a RST that could discard the
// line.
func refuseFD(fd int, reason string) {
	var buf [4096]byte
	for {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	_, _ = unix.Write(fd, refusalLine(reason))
	_ = unix.Shutdown(fd, unix.SHUT_WR)
}

const (
	cmdConnect = iota
	cmdClose
	cmdStop
)

type command struct {
	kind int
	conn *pendingConn
	sess *esession
}

// pendingConn is a client handed to a loop, not yet connected to a backend.
type pendingConn struct {
	ctx   context.Context
	l     *Listener
	a     *admission
	route *Route
	fd    int
}

// leg is one socket of a session.
type leg struct {
	fd      int
	sess    *esession
	peer    *leg
	pending *[]byte // bytes read from peer that this socket did not take yet
	off     int     // start of the unwritten part of pending
	end     int     // end of it
	paused  bool    // not reading this socket: its peer has pending bytes
	eof     bool    // read EOF from this socket
	shut    bool    // shutdown(SHUT_WR) done on this socket
	shutReq bool    // shutdown wanted once pending is flushed
	hup     bool    // the peer hung up (EPOLLRDHUP): read until EOF
}

// esession is a session owned by a loop.
type esession struct {
	lp          *loop
	l           *Listener
	p           *pendingConn // while connecting
	client      leg
	backend     leg
	backendAddr string
	attempt     int // backends tried in this connect
	start       uint64
	connecting  bool
	closed      bool
	registered  bool
	connectBy   int64 // unix nanoseconds; times are kept small: a session is ~250 bytes
	lastActive  int64
	stats       *backendCounters
	// timer wheel links
	wNext, wPrev *esession
	wSlot        int32
	wRounds      int32
}

func (s *esession) target() string { return s.backendAddr }

// kill closes the session from any goroutine: the loop does it.
func (s *esession) kill() { s.lp.post(command{kind: cmdClose, sess: s}) }

// schedBatch is SCHED_BATCH from <linux/sched.h>.
const schedBatch = 3

type loop struct {
	tid     atomic.Int32 // the loop's thread, when it is locked to one (tests)
	epfd    int
	evfd    int
	mu      sync.Mutex
	stopped bool // under mu: evfd is closed, post must not write to it
	queue   []command
	spare   []command
	legs    []*leg // by fd
	buf     []byte
	events  []unix.EpollEvent
	now     time.Time
	nowNs   int64
	wheel   wheel
	parked  atomic.Bool     // epfd is in parkfd: the loop waits through Go's poller (atomic for tests)
	parkfd  *os.File        // an epoll instance in Go's poller, holding epfd while parked
	parkFD  int             // its descriptor (parkfd.Fd() would make it blocking)
	raw     syscall.RawConn // for waiting on parkfd
	pollFn  func(uintptr) bool
	polled  int
	pollErr error
}

// activeWait is how long a loop that has just had events sleeps in epoll_wait holding its P before it
// parks in Go's poller instead. Holding the P is what makes a busy loop as cheap as HAProxy's threads:
// one kernel wake-up per batch of events, no hand-off through the runtime's scheduler (which costs
// extra thread wake-ups and leaves the loop forwarding in smaller bursts: 0.93× HAProxy's throughput
// against 1.00×, see docs/benchmarks.md). Parking when quiet keeps an idle proxy from waking at all:
// a goroutine that holds its P for 10 ms gets a preemption signal from the runtime's sysmon.
const activeWait = 2 // ms

// wait returns the next events, or none after a timeout (ms, -1 for none) for the timer wheel.
func (lp *loop) wait(timeout int) (int, error) {
	if !lp.parked.Load() {
		t := activeWait
		if timeout >= 0 && timeout < t {
			t = timeout
		}
		n, err := rawEpollWait(lp.epfd, lp.events, t)
		if n > 0 || err != nil || t == timeout {
			return n, err
		}
		if err := lp.park(true); err != nil {
			return 0, nil // cannot park (out of kernel memory?): wait holding the P again
		}
	}
	deadline := time.Time{}
	if timeout >= 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
	}
	_ = lp.parkfd.SetReadDeadline(deadline)
	err := lp.raw.Read(lp.pollFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil // stay parked: still nothing but the timer
	}
	if err != nil {
		return 0, err
	}
	if lp.pollErr == nil && lp.polled > 0 {
		_ = lp.park(false)
	}
	return lp.polled, lp.pollErr
}

// park hands waiting over to Go's poller, or takes it back: the loop's epoll instance goes into parkfd,
// an epoll instance registered once in Go's poller (an epoll fd is readable when it has events), and
// the goroutine parks like any network read, giving its P back. epfd leaves parkfd as soon as events
// come: left in, every new event on a busy loop would also wake the runtime's poller thread for nothing.
// Neither way opens a descriptor or allocates, so parking works when the process is out of both.
func (lp *loop) park(on bool) error {
	if on == lp.parked.Load() {
		return nil
	}
	op := unix.EPOLL_CTL_DEL
	if on {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lp.epfd)}
	if err := unix.EpollCtl(lp.parkFD, op, lp.epfd, &ev); err != nil {
		return fmt.Errorf("park: %w", err)
	}
	lp.parked.Store(on)
	return nil
}

// poll is wait's callback while parked, made once as lp.pollFn so that waiting allocates nothing.
func (lp *loop) poll(uintptr) bool {
	lp.polled, lp.pollErr = rawEpollWait(lp.epfd, lp.events, 0)
	return lp.pollErr != nil || lp.polled > 0
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	parkfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.SetNonblock(parkfd, true) // so that os.NewFile puts it in Go's poller
		if err != nil {
			unix.Close(parkfd)
		}
	}
	if err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	lp := &loop{epfd: epfd, evfd: evfd, buf: make([]byte, 64<<10), events: make([]unix.EpollEvent, 256)}
	lp.parkfd, lp.parkFD = os.NewFile(uintptr(parkfd), "epoll-park"), parkfd
	if lp.raw, err = lp.parkfd.SyscallConn(); err != nil {
		lp.parkfd.Close()
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	lp.pollFn = lp.poll
	lp.wheel.init(wheelTick)
	return lp, nil
}

// post queues a command and wakes the loop.
func (lp *loop) post(c command) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.stopped {
		return
	}
	lp.queue = append(lp.queue, c)
	one := [8]byte{1}
	_, _ = unix.Write(lp.evfd, one[:])
}

// run is the loop. It reports on started whether its thread could be set up, then runs until stopped.
func (lp *loop) run(batch bool, started chan<- error) {
	var setupErr error
	if batch {
		// The policy belongs to a thread: the loop keeps its thread for good (also while parked), and
		// the thread ends with the loop (no Unlock), so no other goroutine ever runs under the policy.
		runtime.LockOSThread()
		lp.tid.Store(int32(unix.Gettid()))
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedBatch}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			setupErr = fmt.Errorf("SCHED_BATCH for an event loop's thread: %w", err)
		}
	}
	started <- setupErr // on an error the engine is closed: run on to take the stop command
	defer func() {
		for _, lg := range lp.legs {
			if lg != nil {
				lp.closeSession(lg.sess)
			}
		}
		lp.mu.Lock()
		lp.stopped = true
		unix.Close(lp.evfd)
		lp.mu.Unlock()
		lp.parkfd.Close()
		unix.Close(lp.epfd)
	}()
	for {
		timeout := -1
		if !lp.wheel.empty() {
			timeout = int(wheelTick / time.Millisecond)
		}
		n, err := lp.wait(timeout)
		if err != nil && err != unix.EINTR {
			return
		}
		lp.now = time.Now()
		lp.nowNs = lp.now.UnixNano()
		for i := 0; i < n; i++ {
			ev := &lp.events[i]
			fd := int(ev.Fd)
			if fd == lp.evfd {
				var drain [8]byte
				_, _ = unix.Read(lp.evfd, drain[:])
				if !lp.runCommands() {
					return
				}
				continue
			}
			if fd < len(lp.legs) && lp.legs[fd] != nil {
				lp.handle(lp.legs[fd], ev.Events)
			}
		}
		lp.wheel.advance(lp.now, lp.expire)
	}
}

// runCommands runs queued commands; false means stop.
func (lp *loop) runCommands() bool {
	lp.mu.Lock()
	cmds := lp.queue
	lp.queue = lp.spare[:0]
	lp.mu.Unlock()
	for _, c := range cmds {
		switch c.kind {
		case cmdConnect:
			lp.startConnect(c.conn)
		case cmdClose:
			if !c.sess.closed {
				lp.closeSession(c.sess)
			}
		case cmdStop:
			return false
		}
	}
	lp.spare = cmds[:0]
	return true
}

func (lp *loop) register(lg *leg) error {
	for lg.fd >= len(lp.legs) {
		lp.legs = append(lp.legs, make([]*leg, len(lp.legs)+1024)...)
	}
	lp.legs[lg.fd] = lg
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(lg.fd)}
	return unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, lg.fd, &ev)
}

// startConnect begins a non-blocking connect of a new client to its route, in round-robin order.
func (lp *loop) startConnect(p *pendingConn) {
	s := &esession{lp: lp, l: p.l, p: p, connecting: true, start: p.l.rr.Add(1), wSlot: -1}
	s.client = leg{fd: p.fd, sess: s}
	s.backend = leg{fd: -1, sess: s}
	s.client.peer, s.backend.peer = &s.backend, &s.client
	if err := lp.register(&s.client); err != nil {
		lp.connectFailed(s, fmt.Errorf("epoll: %w", err))
		return
	}
	lp.tryNextBackend(s, nil)
}

// tryNextBackend connects to the next backend of the route, or gives up after each was tried once.
func (lp *loop) tryNextBackend(s *esession, errs []error) {
	route := s.p.route
	for s.attempt < len(route.Backends) {
		addr := route.Backends[(s.start+uint64(s.attempt))%uint64(len(route.Backends))]
		s.attempt++
		fd, err := connectNonblock(addr)
		if errors.Is(err, errNotIP) {
			// A host name: resolving it would block the loop, so this client goes the portable way.
			lp.handOff(s, func(conn net.Conn, p *pendingConn) { Portable.forward(p.ctx, p.l, p.a, p.route) })
			return
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %s: %w", addr, err))
			continue
		}
		s.backend.fd, s.backendAddr = fd, addr
		s.connectBy = lp.nowOr().Add(s.l.connectTimeout()).UnixNano()
		if err := lp.register(&s.backend); err != nil {
			unix.Close(fd)
			s.backend.fd = -1
			errs = append(errs, fmt.Errorf("backend %s: epoll: %w", addr, err))
			continue
		}
		lp.wheel.schedule(s, time.Unix(0, s.connectBy), lp.nowOr())
		return
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no backend"))
	}
	lp.connectFailed(s, errors.Join(errs...))
}

func (lp *loop) nowOr() time.Time {
	if lp.now.IsZero() {
		return time.Now()
	}
	return lp.now
}

var errNotIP = errors.New("backend address is not an IP literal")

func connectNonblock(addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, errNotIP
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// connected finishes a connect once the backend socket is writable.
func (lp *loop) connected(s *esession) {
	soErr, err := unix.GetsockoptInt(s.backend.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soErr != 0 {
		err = unix.Errno(soErr)
	}
	if err != nil {
		lp.dropBackend(s)
		lp.tryNextBackend(s, []error{fmt.Errorf("backend %s: %w", s.backendAddr, err)})
		return
	}
	s.connecting = false
	s.p = nil
	s.lastActive = lp.nowNs
	s.stats = s.l.sessions.add(s)
	if s.stats == nil {
		lp.closeSession(s) // the listener is closing
		return
	}
	s.registered = true
	_ = unix.SetsockoptInt(s.client.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	lp.wheel.remove(s)
	if s.l.IdleTimeout > 0 {
		lp.wheel.schedule(s, lp.now.Add(s.l.IdleTimeout), lp.now)
	}
	// Edge-triggered: whatever arrived while connecting raised no new edge, so read both now.
	lp.pump(&s.client)
	if !s.closed {
		lp.pump(&s.backend)
	}
}

func (lp *loop) dropBackend(s *esession) {
	if s.backend.fd >= 0 {
		lp.legs[s.backend.fd] = nil
		unix.Close(s.backend.fd)
		s.backend.fd = -1
	}
}

// connectFailed gives the client back to the listener, which holds and retries it or refuses it.
func (lp *loop) connectFailed(s *esession, err error) {
	lp.handOff(s, func(conn net.Conn, p *pendingConn) { p.l.connectFailed(p.ctx, p.a, p.route, err) })
}

// handOff takes a connecting client out of the loop and runs next with it as a net.Conn, on a goroutine.
func (lp *loop) handOff(s *esession, next func(net.Conn, *pendingConn)) {
	lp.wheel.remove(s)
	lp.dropBackend(s)
	s.closed = true
	p := s.p
	if s.client.fd < len(lp.legs) {
		lp.legs[s.client.fd] = nil
	}
	_ = unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, s.client.fd, nil)
	conn, err := reattach(s.client.fd, p.l.Name)
	if err != nil {
		p.l.refused.Add(1)
		p.l.release()
		return
	}
	p.a.client = conn
	go next(conn, p)
}

func (lp *loop) handle(lg *leg, events uint32) {
	s := lg.sess
	// Remember a hang-up even while connecting: the edge will not come again, and the reads after the
	// connect must go on to the EOF.
	lg.hup = lg.hup || events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0
	if s.connecting {
		if lg == &s.backend && events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			lp.connected(s)
		} else if lg == &s.client && events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			lp.closeSession(s) // the client gave up while we were connecting
		}
		return
	}
	if events&unix.EPOLLERR != 0 {
		lp.closeSession(s)
		return
	}
	if events&unix.EPOLLOUT != 0 && lg.pending != nil {
		lp.flush(lg)
		if s.closed {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		lp.pump(lg)
	}
}

// pump reads src until the kernel has nothing more (edge-triggered) and writes each chunk to its peer.
func (lp *loop) pump(src *leg) {
	s := src.sess
	dst := src.peer
	for !src.paused && !src.eof && !s.closed {
		n, err := rawRead(src.fd, lp.buf)
		if n > 0 {
			s.lastActive = lp.nowNs
			if src == &s.client {
				s.l.bytesIn.Add(uint64(n))
				s.stats.bytesIn.Add(uint64(n))
			} else {
				s.l.bytesOut.Add(uint64(n))
				s.stats.bytesOut.Add(uint64(n))
			}
			if !lp.send(dst, lp.buf[:n]) {
				return
			}
			if n < len(lp.buf) && !src.hup {
				// A short read drained the socket: data arriving later raises a new edge, so the read
				// that would only say EAGAIN is saved. After a hang-up, read on to the EOF.
				return
			}
			continue
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err != nil {
			lp.closeSession(s)
			return
		}
		// EOF: pass the half-close on once everything read before it is written.
		src.eof = true
		dst.shutReq = true
		if dst.pending == nil {
			lp.shutWrite(dst)
		}
	}
}

// send writes b to dst; what dst does not take is kept and the source paused. It returns false when
// the source must stop reading.
func (lp *loop) send(dst *leg, b []byte) bool {
	for len(b) > 0 {
		n, err := rawWrite(dst.fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			bp := pendingBufs.Get().(*[]byte)
			dst.pending, dst.off, dst.end = bp, 0, copy(*bp, b)
			dst.peer.paused = true
			return false
		}
		lp.closeSession(dst.sess)
		return false
	}
	return true
}

// flush writes dst's pending bytes; once they are gone the paused source resumes.
func (lp *loop) flush(dst *leg) {
	buf := *dst.pending
	for dst.off < dst.end {
		n, err := rawWrite(dst.fd, buf[dst.off:dst.end])
		if n > 0 {
			dst.off += n
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		lp.closeSession(dst.sess)
		return
	}
	pendingBufs.Put(dst.pending)
	dst.pending = nil
	if dst.shutReq {
		lp.shutWrite(dst)
	}
	src := dst.peer
	src.paused = false
	lp.pump(src)
}

func (lp *loop) shutWrite(lg *leg) {
	if lg.shut || lg.sess.closed {
		return
	}
	lg.shut = true
	if err := unix.Shutdown(lg.fd, unix.SHUT_WR); err != nil {
		lp.closeSession(lg.sess)
		return
	}
	// Both directions finished: nothing more can move.
	if lg.peer.shut && lg.eof && lg.peer.eof {
		lp.closeSession(lg.sess)
	}
}

func (lp *loop) closeSession(s *esession) {
	if s.closed {
		return
	}
	s.closed = true
	lp.wheel.remove(s)
	for _, lg := range []*leg{&s.client, &s.backend} {
		if lg.fd >= 0 {
			if lg.fd < len(lp.legs) {
				lp.legs[lg.fd] = nil
			}
			unix.Close(lg.fd)
			lg.fd = -1
		}
		if lg.pending != nil {
			pendingBufs.Put(lg.pending)
			lg.pending = nil
		}
	}
	if s.registered {
		s.l.sessions.remove(s)
	}
	s.l.release()
}

// expire is the timer wheel's callback: a connect that took too long, or a session idle too long.
func (lp *loop) expire(s *esession) {
	if s.closed {
		return
	}
	if s.connecting {
		if lp.nowNs >= s.connectBy {
			addr := s.backendAddr
			lp.dropBackend(s)
			lp.tryNextBackend(s, []error{fmt.Errorf("backend %s: connect timeout", addr)})
		} else {
			lp.wheel.schedule(s, time.Unix(0, s.connectBy), lp.now)
		}
		return
	}
	if idle := s.l.IdleTimeout; idle > 0 {
		if due := s.lastActive + int64(idle); lp.nowNs < due {
			lp.wheel.schedule(s, time.Unix(0, due), lp.now)
			return
		}
		lp.closeSession(s)
	}
}

var pendingBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// wheelTick is the timer wheel's resolution: connect and idle timeouts fire up to this much late.
const wheelTick = 50 * time.Millisecond

// wheel is a hashed timer wheel over intrusive lists: scheduling and removal allocate nothing, and a
// loop with thousands of idle sessions wakes once per tick instead of once per session.
type wheel struct {
	tick  time.Duration
	slots [512]*esession
	cur   int
	last  time.Time
	count int
}

func (w *wheel) init(tick time.Duration) { w.tick = tick }

func (w *wheel) empty() bool { return w.count == 0 }

func (w *wheel) schedule(s *esession, at, now time.Time) {
	w.remove(s)
	if w.count == 0 {
		w.last = now
	}
	ticks := int((at.Sub(w.last) + w.tick - 1) / w.tick)
	if ticks < 1 {
		ticks = 1
	}
	s.wSlot = int32((w.cur + ticks) % len(w.slots))
	s.wRounds = int32((ticks - 1) / len(w.slots))
	s.wPrev, s.wNext = nil, w.slots[s.wSlot]
	if s.wNext != nil {
		s.wNext.wPrev = s
	}
	w.slots[s.wSlot] = s
	w.count++
}

func (w *wheel) remove(s *esession) {
	if s.wSlot < 0 || (s.wPrev == nil && w.slots[s.wSlot] != s) {
		return
	}
	if s.wPrev != nil {
		s.wPrev.wNext = s.wNext
	} else {
		w.slots[s.wSlot] = s.wNext
	}
	if s.wNext != nil {
		s.wNext.wPrev = s.wPrev
	}
	s.wPrev, s.wNext, s.wSlot = nil, nil, -1
	w.count--
}

// advance moves the wheel to now, calling fire for every session whose time has come.
func (w *wheel) advance(now time.Time, fire func(*esession)) {
	if w.count == 0 {
		w.last = now
		return
	}
	for now.Sub(w.last) >= w.tick {
		w.last = w.last.Add(w.tick)
		w.cur = (w.cur + 1) % len(w.slots)
		for s := w.slots[w.cur]; s != nil; {
			next := s.wNext
			if s.wRounds > 0 {
				s.wRounds--
			} else {
				w.remove(s)
				fire(s)
			}
			s = next
		}
	}
}

// rawRead and rawWrite skip the runtime's syscall bookkeeping (entersyscall/exitsyscall): the sockets
// are non-blocking, so these calls never block, and on the hot path that bookkeeping is a measurable
// share of a small request's cost.
func rawRead(fd int, b []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func rawWrite(fd int, b []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawEpollWait waits up to timeout ms without the runtime's syscall bookkeeping: the calling goroutine
// keeps its P (and thread) while the thread sleeps in the kernel. Only the loop does this, for at most
// activeWait; a signal (the runtime's preemption, a stop-the-world) ends the wait with EINTR.
func rawEpollWait(epfd int, events []unix.EpollEvent, timeout int) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(timeout), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
