package respsession

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestPortableWriterStaysWithItsConnection: a backend writer that starts only after its session moved
// to another connection (the goroutine was slow to be scheduled) writes nothing, and leaves what is
// queued for the new connection to the new connection's writer. (CI once lost a held command that
// way: the old writer took the new connection's bytes and wrote them to the closed old one.)
func TestPortableWriterStaysWithItsConnection(t *testing.T) {
	oldConn, oldPeer := net.Pipe()
	newConn, newPeer := net.Pipe()
	defer oldPeer.Close()
	defer newPeer.Close()
	s := &psession{}
	s.cond = sync.NewCond(&s.mu)
	old := &pbackend{conn: oldConn}
	s.backend = &pbackend{conn: newConn, out: []byte("*3\r\n$3\r\nSET\r\n$4\r\nlate\r\n$1\r\n1\r\n")}
	oldConn.Close() // cut before its writer ran

	done := make(chan struct{})
	go func() { s.writeBackend(old); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the old connection's writer did not stop")
	}
	s.mu.Lock()
	left := string(s.backend.out)
	s.mu.Unlock()
	if left == "" {
		t.Fatal("the old connection's writer took the new connection's command")
	}

	go s.writeBackend(s.backend)
	buf := make([]byte, len(left))
	_ = newPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := newPeer.Read(buf); err != nil || string(buf) != left {
		t.Fatalf("the new connection got %q, %v", buf, err)
	}
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}
