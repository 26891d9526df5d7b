package respsession

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// Connections a session opens beside its own, for a moment, to ask the node something: whether it is
// alive (answers: a kill is told from a death), and to release a blocking command (unblock).
//
// A drain releases a blocking command waiting on the old master with CLIENT UNBLOCK <id> TIMEOUT, which
// only another connection can send. This is that connection: opened on a goroutine of its own (a
// failover is rare, and the session's loop must not wait for a connect), authenticated as the client,
// and closed once the command is released or the drain is over.

// unblockJob is one release in progress; stop ends it.
type unblockJob struct{ stop atomic.Bool }

// unblockEvery is how often CLIENT UNBLOCK is sent again while it finds nothing blocked: the command
// may still be on its way into the old master, behind what the session sent before it.
const unblockEvery = 10 * time.Millisecond

// unblock releases the command blocking the connection id at addr, as the client's user, until it is
// released, the job is stopped or the drain's bound passes.
func (s *core) unblock(addr string, id int64) *unblockJob {
	job := &unblockJob{}
	st := s.conv.st
	dial := s.c.Dial
	go func() {
		deadline := time.Now().Add(drainLimit)
		conn, err := dial(addr)
		if err != nil {
			return // the drain's bound answers the command as before
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		r := bufio.NewReader(conn)
		if st.authed {
			user := st.user
			if user == "" {
				user = "default"
			}
			if _, err := call(conn, r, "AUTH", user, st.pass); err != nil {
				return
			}
		}
		for !job.stop.Load() && time.Now().Before(deadline) {
			v, err := call(conn, r, "CLIENT", "UNBLOCK", strconv.FormatInt(id, 10), "TIMEOUT")
			if err != nil || v.Int == 1 {
				return
			}
			time.Sleep(unblockEvery)
		}
	}()
	return job
}

// answerWithin bounds answers' wait for the node's reply to its PING.
const answerWithin = time.Second

// closedBy says why a node closed a session's connection (killCheck): it died, or it closed it itself.
type closedBy uint8

const (
	nodeDied   closedBy = iota // it does not answer on a new connection
	nodeKilled                 // it answers: CLIENT KILL, an output-buffer limit, timeout, maxclients
	// nodeReconfigured: it answers as a replica still linking to its master, or the group's master just
	// changed and it is a replica: Sentinel turned it to the new master and closed its clients with it
	// (sentinelSendSlaveOf sends CLIENT KILL TYPE normal with the SLAVEOF).
	nodeReconfigured
)

// whyClosed asks the node at addr, as the client's user, on a new connection: a PING (any reply, NOAUTH
// or maxclients' error included, says it is alive), then ROLE.
func whyClosed(dial func(string) (net.Conn, error), addr string, st connState, reconfiguring bool) closedBy {
	conn, err := dial(addr)
	if err != nil {
		return nodeDied
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(answerWithin))
	r := bufio.NewReader(conn)
	var redisErr resp.Error
	if _, err = call(conn, r, "PING"); err != nil && !errors.As(err, &redisErr) {
		return nodeDied
	}
	if reconfiguring {
		// Within a minute of a master change Sentinels may turn any node (flapping ones, the routed
		// master too) and close its clients with it; by the time of this check its role may have
		// changed back: the session moves, as before kills were told apart.
		return nodeReconfigured
	}
	if st.authed {
		if _, err := call(conn, r, "AUTH", cmp.Or(st.user, "default"), st.pass); err != nil {
			return nodeKilled
		}
	}
	// ["slave", host, port, state, offset]: a state other than "connected" is a replica Sentinel just
	// pointed elsewhere.
	if v, err := call(conn, r, "ROLE"); err == nil && len(v.Elems) >= 4 && v.Elems[0].Str == "slave" &&
		(v.Elems[3].Str != "connected" || reconfiguring) {
		return nodeReconfigured
	}
	return nodeKilled
}

// call sends one command on conn and reads its reply.
func call(conn net.Conn, r *bufio.Reader, args ...string) (resp.Value, error) {
	if _, err := conn.Write(resp.AppendCommand(nil, args...)); err != nil {
		return resp.Value{}, err
	}
	v, err := resp.ReadValue(r, resp.Limits{MaxBulk: 1 << 16, MaxElements: 64, MaxDepth: 2, MaxLine: 1 << 16})
	if err == nil {
		err = v.Err()
	}
	if err != nil {
		return v, fmt.Errorf("%s: %w", args[0], err)
	}
	return v, nil
}
