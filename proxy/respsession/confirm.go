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

// confirmer sends a key's WAITs, one at a time, for the sessions of the pool that hold write replies.
type confirmer struct {
	pool *pool
	key  poolKey
	sc   *sharedConn // its connection; nil until the first WAIT, and after a failure
	// pending are the sessions to cover with the next WAIT, inflight those the WAIT in flight covers.
	pending, inflight []coverage
	busy              bool // a WAIT is in flight
	asked             bool // asked the loop for the end of this wake-up (EventsHandled)
}

// coverage is a session a WAIT covers, up to how many of the write replies it held.
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
				p.confirmers[key] = cf
			}
		}
		cf.add(cl, n)
	}
	if cf != nil && !cf.asked && !cf.busy {
		cf.asked = true
		p.lp.AtEnd(cf) // the WAIT goes once the wake-up's reads are all in: one for them all
	}
}

// add lists cl, holding upto write replies, for the next WAIT.
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

// EventsHandled implements eventloop.EndHandler: the WAIT for what is pending goes out; a confirmer
// nobody needs any more closes.
func (cf *confirmer) EventsHandled() {
	cf.asked = false
	cf.send()
	cf.closeIfIdle()
}

// send sends PING and WAIT for the pending sessions, when no WAIT is in flight.
func (cf *confirmer) send() {
	if cf.busy || len(cf.pending) == 0 {
		return
	}
	if cf.sc == nil {
		sc, err := cf.pool.dial(cf.key, false, cf.pool.timeout)
		if err != nil {
			cf.failed(err)
			return
		}
		sc.confirm = cf
		sc.out.Retain = true
		cf.sc = sc
	}
	now := cf.pool.lp.NowNs()
	sc := cf.sc
	sc.out.Append(pingCommand)
	sc.out.Append(cf.key.dur.setting.Load().wait)
	sc.fifo = append(sc.fifo, pendingReplies{n: 1, at: now}, pendingReplies{n: 1, wait: true, at: now})
	cf.busy = true
	cf.pending, cf.inflight = cf.inflight[:0], cf.pending
	for _, c := range cf.inflight {
		c.cl.covered = false
	}
	if !sc.connecting {
		sc.flush()
	}
}

// pingCommand sets the confirmer's replication offset to the master's before each WAIT.
var pingCommand = resp.AppendCommand(nil, "PING")

// answered gives the WAIT's answer (its reply, sent at sentAt) to the sessions it covered, lists them
// among touched (they act on it once the read is delivered), and sends the next WAIT if sessions wait.
func (cf *confirmer) answered(reply []byte, sentAt int64, touched []*claim) []*claim {
	replicas, _, err := resp.PeekInt(reply)
	if err == nil {
		cf.key.dur.observeWait(time.Duration(cf.pool.lp.NowNs()-sentAt), replicas)
	}
	for _, c := range cf.inflight {
		if c.cl.rcv == nil {
			continue
		}
		c.cl.rcv.sharedConfirmed(replicas, err, c.upto)
		if !c.cl.touched {
			c.cl.touched = true
			touched = append(touched, c.cl)
		}
	}
	clear(cf.inflight)
	cf.inflight = cf.inflight[:0]
	cf.busy = false
	if (len(cf.pending) > 0 || cf.pool.conns[cf.key] == nil) && !cf.asked {
		cf.asked = true
		cf.pool.lp.AtEnd(cf) // the next WAIT; or, with no shared connection left, the close
	}
	return touched
}

// failed is told that the confirmer's connection failed: every session waiting on it gets err for its
// writes (NOREPLICAS: they could not be confirmed), and the next WAIT connects anew.
func (cf *confirmer) failed(err error) {
	cf.sc, cf.busy = nil, false
	waiting := append(cf.inflight, cf.pending...)
	cf.inflight, cf.pending = nil, nil
	for _, c := range waiting {
		c.cl.covered = false
		if c.cl.rcv != nil {
			c.cl.rcv.sharedConfirmed(0, err, c.upto)
			c.cl.rcv.sharedSettled()
		}
	}
}

// closeIfIdle closes the confirmer when its key has no shared connection left and nobody waits on it.
func (cf *confirmer) closeIfIdle() {
	if cf.busy || len(cf.pending) > 0 || cf.pool.conns[cf.key] != nil {
		return
	}
	delete(cf.pool.confirmers, cf.key)
	if cf.sc != nil {
		cf.sc.close()
		cf.sc = nil
	}
}
