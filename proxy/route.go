// Package proxy accepts client connections and forwards them to the backend its current Route names.
// It knows nothing of Sentinel: it is given a Route (an atomic pointer, swapped by SetRoute) and asked
// to close the sessions to a backend. It imports nothing else of sentinel-proxy.
package proxy

// Route says where a listener sends new clients.
type Route struct {
	// Backends are "host:port" addresses, chosen round-robin. Empty means new clients are refused.
	Backends []string
	// Refusal says why there is no backend; clients receive it as a RESP error line.
	Refusal string
}

// refusalLine renders a RESP error reply that any Redis client shows to its user instead of hanging.
func refusalLine(reason string) []byte {
	clean := make([]byte, 0, len(reason))
	for i := 0; i < len(reason); i++ {
		c := reason[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		clean = append(clean, c)
	}
	return append(append([]byte("-ERR sentinel-proxy: "), clean...), '\r', '\n')
}
