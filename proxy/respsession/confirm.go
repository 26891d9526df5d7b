package respsession

import (
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// A WAIT blocks the connection it is sent on until the replicas answer: sent on a shared connection, it
// would hold every session's commands behind it (measured: SET through multiplex at 0.39x HAProxy's
// throughput with a WAIT after each batch). So the sessions that share connections confirm their writes
// on a connection of the pool's that carries nothing else, one per key: the confirmer. A WAIT waits for
// the replication offset its connection had after its previous command (the client's woff, which Redis 7
// sets after every command: server.c, processCommand); so the confirmer sends a PING, which sets it to the
// master's offset now, past every write whose reply already came, then the WAIT. After each read of a
// shared connection that gave sessions write replies, the pool covers them: each such session is listed,
// with how many write replies it holds then; the confirmer's next WAIT answers for those. One WAIT is in
// flight at a time; the writes answered meanwhile wait for the next, with everyone else's: a group commit
// for every session of the loop.

// confirmer sends a key's WAITs for the sessions of the pool that hold write replies, on confirmLanes
// connections of its own, a WAIT in flight on each at most.
type confirmer struct {
	pool *pool
	key  poolKey
	// pending are the sessions to cover with the next WAIT.
	pending []coverage
	lanes   [confirmLanes]lane
	asked   bool // asked the loop for the end of this wake-up (EventsHandled)
}

// confirmLanes is how many WAITs a key may have in flight. With one, the write replies that come while
// it waits for the replicas wait for its answer and then for a WAIT of their own; with two, their WAIT
// goes at once. Measured in docs/benchmarks.md.
const confirmLanes = 2

// lane is one of a confirmer's connections and the sessions its WAIT in flight covers.
type lane struct {
	cf       *confirmer
	sc       *sharedConn // nil until its first WAIT, and after a failure
	inflight []coverage
	busy     bool // a WAIT is in flight
}

// coverage is a session a WAIT covers, up to which of the write replies it held (sharedHeld).
type coverage struct {
	cl   *claim
	upto int
}

// cover lists, for the key's confirmer, the sessions of touched that hold write replies now.
func (p *pool) cover(key poolKey, touched []*claim) {
	var cf *confirmer
	for _, cl := range touched {
		if cl.rcv == nil {
			continue
		}
		n := cl.rcv.sharedHeld()
		if n == 0 {
			continue
		}
		if cf == nil {
			if cf = p.confirmers[key]; cf == nil {
				cf = &confirmer{pool: p, key: key}
				for i := range cf.lanes {
					cf.lanes[i].cf = cf
				}
				p.confirmers[key] = cf
			}
		}
		cf.add(cl, n)
	}
	if cf != nil {
		cf.ask()
	}
}

// ask asks the loop for the end of this wake-up: the WAIT goes once the wake-up's reads are all in, one
// for them all.
func (cf *confirmer) ask() {
	if !cf.asked {
		cf.asked = true
		cf.pool.lp.AtEnd(cf)
	}
}

// add lists cl, holding write replies up to upto, for the next WAIT.
func (cf *confirmer) add(cl *claim, upto int) {
	if cl.covered {
		for i := range cf.pending {
			if cf.pending[i].cl == cl {
				cf.pending[i].upto = upto
				return
			}
		}
	}
	cl.covered = true
	cf.pending = append(cf.pending, coverage{cl: cl, upto: upto})
}

// EventsHandled implements eventloop.EndHandler: the WAIT for what is pending goes out on a free lane;
// a confirmer nobody needs any more closes.
func (cf *confirmer) EventsHandled() {
	cf.asked = false
	cf.send()
	cf.closeIfIdle()
}

// send sends PING and WAIT for the pending sessions on a lane with no WAIT in flight, if one is free.
func (cf *confirmer) send() {
	if len(cf.pending) == 0 {
		return
	}
	var ln *lane
	for i := range cf.lanes {
		if !cf.lanes[i].busy {
			ln = &cf.lanes[i]
			break
		}
	}
	if ln == nil {
		return // every lane waits: the first to be answered sends (answered)
	}
	if ln.sc == nil {
		sc, err := cf.pool.dial(cf.key, false, cf.pool.timeout)
		if err != nil {
			ln.inflight, cf.pending = cf.pending, nil
			ln.failed(err)
			return
		}
		sc.confirm = ln
		sc.out.Retain = true
		ln.sc = sc
	}
	now := cf.pool.lp.NowNs()
	sc := ln.sc
	sc.out.Append(pingCommand)
	sc.out.Append(cf.key.dur.setting.Load().wait)
	sc.fifo = append(sc.fifo, pendingReplies{n: 1, at: now}, pendingReplies{n: 1, wait: true, at: now})
	ln.busy = true
	cf.pending, ln.inflight = ln.inflight[:0], cf.pending
	for _, c := range ln.inflight {
		c.cl.covered = false
	}
	if !sc.connecting {
		sc.flush()
	}
}

// pingCommand sets a lane's replication offset to the master's before each WAIT.
var pingCommand = resp.AppendCommand(nil, "PING")

// answered gives the lane's WAIT's answer (its reply, sent at sentAt) to the sessions it covered, lists
// them among touched (they act on it once the read is delivered), and has the next WAIT sent if sessions
// wait.
func (ln *lane) answered(reply []byte, sentAt int64, touched []*claim) []*claim {
	cf := ln.cf
	replicas, _, err := resp.PeekInt(reply)
	if err == nil {
		cf.key.dur.observeWait(time.Duration(cf.pool.lp.NowNs()-sentAt), replicas)
	}
	for _, c := range ln.inflight {
		if c.cl.rcv == nil {
			continue
		}
		c.cl.rcv.sharedConfirmed(replicas, err, c.upto)
		if !c.cl.touched {
			c.cl.touched = true
			touched = append(touched, c.cl)
		}
	}
	clear(ln.inflight)
	ln.inflight = ln.inflight[:0]
	ln.busy = false
	if len(cf.pending) > 0 || cf.pool.conns[cf.key] == nil {
		cf.ask() // the next WAIT; or, with no shared connection left, the close
	}
	return touched
}

// failed is told that the lane's connection failed (or could not be made): every session its WAIT
// covered gets err for its writes (NOREPLICAS: they could not be confirmed); the lane connects anew for
// its next WAIT.
func (ln *lane) failed(err error) {
	ln.sc, ln.busy = nil, false
	waiting := ln.inflight
	ln.inflight = nil
	for _, c := range waiting {
		c.cl.covered = false
		if c.cl.rcv != nil {
			c.cl.rcv.sharedConfirmed(0, err, c.upto)
			c.cl.rcv.sharedSettled()
		}
	}
	if len(ln.cf.pending) > 0 {
		ln.cf.ask()
	}
}

// closeIfIdle closes the confirmer when its key has no shared connection left and nobody waits on it.
func (cf *confirmer) closeIfIdle() {
	if len(cf.pending) > 0 || cf.pool.conns[cf.key] != nil {
		return
	}
	for i := range cf.lanes {
		if cf.lanes[i].busy {
			return
		}
	}
	delete(cf.pool.confirmers, cf.key)
	for i := range cf.lanes {
		if sc := cf.lanes[i].sc; sc != nil {
			cf.lanes[i].sc = nil
			sc.close()
		}
	}
}
