// Package respsession serves resp mode (`mode = "resp"`): a proxy.Handler whose sessions read their
// client's commands and the backend's replies as they stream, so that a client outlives its backend
// connection. It owns, per client: what the client set on its connection (AUTH, SELECT, HELLO, CLIENT
// SETNAME, subscriptions, tracking, MONITOR), the commands waiting for their replies, the moves to a new
// backend at a failover (state replayed, reads sent again, writes in flight answered "may or may not
// have been applied", held commands sent), the switchover's hold (proxy.CommandHolder), and, with
// `multiplex = true`, the backend connections shared by many clients. It never decides where a client
// goes: the listener's route says (proxy.Client), and the listener retires a backend.
//
// The layers, each knowing only the one below it:
//
//   - conv (conv.go, classify.go, failover.go, drain.go, tx.go, hold.go, mux.go, state.go): the
//     conversation. Bytes in, decisions and bytes out (output); no I/O, no clock of its own, no socket.
//     Fuzzed and table-tested. At a failover off a live master it drains what is in flight (drain.go)
//     and carries an open transaction over (tx.go).
//   - core (core.go): the session whatever drives it: proxy.Session and proxy.CommandHolder, its
//     registration at a backend (proxy.Client.Arrived: the end of admission, and of every move), moving
//     off a backend that left, the hold, the retries while no backend answers, the drain's bounds, a
//     kill told from a death. It decides; its driver does, but for the moments it asks a node something
//     on a connection of its own (sideconn.go: a PING, a CLIENT UNBLOCK), on a goroutine.
//   - the drivers, which own the sockets and only do I/O and wait for readiness: epoll.go (a session's
//     two sockets on one event loop; shared.go for its multiplexed side) and portable.go (goroutines on
//     net.Conns: any system, and TLS). Off Linux there are no event loops, and resp mode runs on the
//     goroutine driver.
//   - pool.go: a loop's shared backend connections. A session and a shared connection meet only
//     through a claim: the session joins a connection (pool.join), sends whole commands through its
//     claim and cancels it when it leaves; the connection gives the replies, in order, to the claim's
//     receiver. A shared connection touches no session or conversation field.
//
// Ownership: from Serve on, a session owns its client's connection and the backend connections it
// opens (a shared connection is its pool's, never a session's), and it ends them; the listener only
// calls the proxy.Session methods, from any goroutine, which run in the session's turn (posted to its
// loop, or under its lock). Every RESP byte is read through package resp.
package respsession
