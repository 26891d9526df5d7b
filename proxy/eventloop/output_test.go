package eventloop

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestOutputKeepsWhatTheSocketDoesNotTake: writes to a peer that reads nothing are kept, in order,
// after what waits; once the peer reads, Flush writes them all and the buffer goes back.
func TestOutputKeepsWhatTheSocketDoesNotTake(t *testing.T) {
	lp := testLoop(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	defer peer.Close()
	fd, err := Detach(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	_ = lp

	var o Output
	var want bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for i := 0; o.Len() == 0 && i < 1024; i++ {
		chunk[0] = byte('A' + i%26)
		if err := o.Write(fd, chunk); err != nil {
			t.Fatal(err)
		}
		want.Write(chunk)
	}
	if o.Len() == 0 {
		t.Fatal("the socket never filled")
	}
	o.Append([]byte("tail"))
	want.WriteString("tail")
	got := make(chan []byte)
	go func() {
		_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(peer, int64(want.Len())))
		got <- b
	}()
	deadline := time.Now().Add(10 * time.Second)
	for o.Len() > 0 && time.Now().Before(deadline) {
		if err := o.Flush(fd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if o.Len() > 0 || o.buf != nil {
		t.Fatalf("%d bytes left, buffer kept %v", o.Len(), o.buf != nil)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the peer read %d bytes, not the %d written in order", len(b), want.Len())
	}
}
