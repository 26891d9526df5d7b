package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// respConn is a bare RESP client for the tests that must see what kind each value is (a RESP3 push, a
// null, a monitor line), send without waiting for the reply, or read without sending.
type respConn struct {
	conn net.Conn
	rd   *bufio.Reader
}

// dialRESP connects to addr and runs setup, each command of which must succeed; the test's cleanup
// closes the connection.
func dialRESP(t *testing.T, addr string, setup ...[]string) *respConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &respConn{conn: conn, rd: bufio.NewReader(conn)}
	for _, cmd := range setup {
		if _, err := c.do(cmd...); err != nil {
			t.Fatalf("%s through %s: %v", cmd[0], addr, err)
		}
	}
	return c
}

// pooled is the setup of a pooled client: authenticated, on database 3, with a name.
func pooled(name string) [][]string {
	return [][]string{{"AUTH", testPassword}, {"SELECT", "3"}, {"CLIENT", "SETNAME", name}}
}

func (c *respConn) send(args ...string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(resp.AppendCommand(nil, args...))
	return err
}

// read reads one value within timeout; an error reply is a value, not an error.
func (c *respConn) read(timeout time.Duration) (resp.Value, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	return resp.ReadValue(c.rd, resp.Limits{})
}

// do sends a command and reads its reply within 10 seconds; an error reply comes back as an error.
func (c *respConn) do(args ...string) (resp.Value, error) {
	if err := c.send(args...); err != nil {
		return resp.Value{}, err
	}
	v, err := c.read(10 * time.Second)
	if err == nil {
		err = v.Err()
	}
	return v, err
}

// whoAmI asks, with CLIENT INFO, which node the client's session is on and what it is there: the fields
// of the line (laddr is the node, db, name, flags, resp ...).
func (c *respConn) whoAmI() (map[string]string, error) {
	v, err := c.do("CLIENT", "INFO")
	if err != nil {
		return nil, err
	}
	return infoFields(v)
}

// infoFields reads a CLIENT INFO reply (RESP2 bulk or RESP3 verbatim string) into its fields.
func infoFields(v resp.Value) (map[string]string, error) {
	if v.Kind != '$' && v.Kind != '=' {
		return nil, fmt.Errorf("CLIENT INFO answered %q (kind %q)", v.Text(), v.Kind)
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(strings.TrimPrefix(v.Str, "txt:")) {
		k, val, _ := strings.Cut(kv, "=")
		f[k] = val
	}
	return f, nil
}

// wantState checks CLIENT INFO fields against a pooled client's state: its name, database 3.
func wantState(f map[string]string, name string) error {
	if f["name"] != name || f["db"] != "3" {
		return fmt.Errorf("on %s as name=%q db=%s, want name=%q db=3", f["laddr"], f["name"], f["db"], name)
	}
	return nil
}

// closedByPeer reports whether err says the other end closed the connection, as opposed to a timeout.
func closedByPeer(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
