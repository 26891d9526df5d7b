package eventloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrNotIP is Connect's answer to an address that is not an IP literal: resolving a name would block
// the loop (Dial resolves it on another goroutine).
var ErrNotIP = errors.New("address is not an IP literal")

// errConnectTimeout is how a connect that took longer than its timeout ends.
var errConnectTimeout = errors.New("connect timeout")

// DialHandler is told, on the loop, how a Dial ended.
type DialHandler interface {
	// Dialed gets the connected socket, registered with the loop with the Dialing as its handler (give
	// it to its own with Rebind, then read it: what arrived meanwhile raised no new edge), or why there
	// is none.
	Dialed(fd int, err error)
}

// Dialing is one connect in progress on a loop, for its DialHandler. Only the loop touches it.
type Dialing struct {
	lp      *Loop
	h       DialHandler
	fd      int
	by      int64 // the deadline, unix nanoseconds
	timeout time.Duration
	timer   Timer
	seen    Events // every event of the socket so far: a hang-up while connecting raises no new edge
	over    bool   // it ended, or was cancelled: nothing more is said
}

// Seen is every readiness the socket reported while connecting: its handler, which reads it from
// then on, must know of a hang-up (read to the EOF), whose edge came before the handler had it.
func (d *Dialing) Seen() Events { return d.seen }

// Dial connects to addr ("host:port") without blocking the loop: an IP literal is connected at once,
// non-blocking; a host name is first resolved on another goroutine, as net.Dial would resolve it, and
// its first address connected. The whole takes at most timeout. The outcome goes to h.Dialed, on the
// loop, after Dial returned; an error Dial returns itself (out of descriptors) means h hears nothing.
func (lp *Loop) Dial(addr string, timeout time.Duration, h DialHandler) (*Dialing, error) {
	d := &Dialing{lp: lp, h: h, fd: -1, timeout: timeout, by: lp.NowNs() + int64(timeout)}
	d.timer.Owner = d
	fd, err := Connect(addr)
	if errors.Is(err, ErrNotIP) {
		d.resolve(addr)
		lp.Schedule(&d.timer, time.Unix(0, d.by))
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	if err := d.start(fd); err != nil {
		return nil, err
	}
	return d, nil
}

// start waits for fd's connect to end.
func (d *Dialing) start(fd int) error {
	if err := d.lp.Add(fd, d); err != nil {
		Close(fd)
		return err
	}
	d.fd = fd
	d.lp.Schedule(&d.timer, time.Unix(0, d.by))
	return nil
}

// resolve looks host up off the loop and connects its first address on the loop.
func (d *Dialing) resolve(addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		d.lp.Post(func() { d.end(-1, err) })
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		defer cancel()
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err == nil && len(ips) == 0 {
			err = fmt.Errorf("lookup %s: no address", host)
		}
		d.lp.Post(func() {
			if d.over {
				return
			}
			if err != nil {
				d.end(-1, err)
				return
			}
			fd, err := Connect(net.JoinHostPort(ips[0], port))
			if err == nil {
				err = d.start(fd)
			}
			if err != nil {
				d.end(-1, err)
			}
		})
	}()
}

// Cancel ends the connect without a word to its handler: the socket, if any, is closed.
func (d *Dialing) Cancel() {
	if d.over {
		return
	}
	d.over = true
	d.lp.Cancel(&d.timer)
	if d.fd >= 0 {
		d.lp.Forget(d.fd)
		Close(d.fd)
		d.fd = -1
	}
}

// end tells the handler, once.
func (d *Dialing) end(fd int, err error) {
	if d.over {
		return
	}
	d.over = true
	d.lp.Cancel(&d.timer)
	if err != nil && d.fd >= 0 {
		d.lp.Forget(d.fd)
		Close(d.fd)
	}
	d.fd = -1
	d.h.Dialed(fd, err)
}

// Event implements Handler: the connect ended when the socket turns writable or fails.
func (d *Dialing) Event(events Events) {
	d.seen |= events
	if d.over || !(events.Writable() || events.Failed() || events.HungUp()) {
		return
	}
	if err := SocketError(d.fd); err != nil {
		d.end(-1, err)
		return
	}
	d.end(d.fd, nil)
}

// Stop implements Handler: the loop stops; the handler's own descriptors are stopped too.
func (d *Dialing) Stop() { d.Cancel() }

// Expire implements Expirer: the timeout.
func (d *Dialing) Expire() {
	if d.over {
		return
	}
	if now := d.lp.NowNs(); now < d.by {
		d.lp.Schedule(&d.timer, time.Unix(0, d.by))
		return
	}
	d.end(-1, errConnectTimeout)
}
