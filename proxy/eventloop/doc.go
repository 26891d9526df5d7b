// Package eventloop runs event loops for the proxy's data path: a few loops, each owning a poller
// (epoll) and the descriptors registered with it, a queue of functions other goroutines post to it, and
// a timer wheel; and what the handlers on a loop share: the raw non-blocking socket calls, a connect
// that never blocks the loop (Dial: host names are resolved on another goroutine), and the output a
// socket did not take yet (Output). It knows no protocol: what happens on a descriptor is its Handler's
// business (the byte forwarder in proxy/pipe, RESP sessions). Everything a loop does runs on its own
// goroutine, so a handler needs no locks for the state it keeps on one loop.
//
// Only the poller and the system calls are Linux's (poller_linux.go, sys_linux.go); their siblings
// (_other.go) say what other systems lack, so that the code written for the loops builds everywhere.
// There, New fails and the proxy serves clients on goroutines instead.
package eventloop
