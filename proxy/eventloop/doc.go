// Package eventloop runs epoll event loops for the proxy's data path on Linux: a few loops, each owning
// an epoll instance and the descriptors registered with it, a queue of functions other goroutines post
// to it, a timer wheel, and the raw non-blocking socket calls its handlers use. It knows no protocol:
// what happens on a descriptor is its Handler's business (the byte forwarder in proxy/pipe, RESP
// sessions). Everything a loop does runs on its own goroutine, so a handler needs no locks for the state
// it keeps on one loop.
//
// On systems without epoll, New returns an error and the proxy uses goroutines instead.
package eventloop
