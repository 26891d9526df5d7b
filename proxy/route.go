// Package proxy admits client connections and hands them to a Handler that serves them (the byte
// forwarder in proxy/pipe; a RESP session). It owns what every kind of session shares: the listening
// sockets, the connection limit, TLS termination, holding clients while there is no route and refusing
// them with a RESP error, round-robin over a Route's backends, the registry of live sessions by backend,
// and the counters. It knows nothing of Sentinel: it is given a Route (SetRoute) and told when a backend
// leaves its pool (RetireBackend) or when an operator kills its sessions (CloseSessionsTo). It imports
// nothing of sentinel-proxy but the resp package.
package proxy

// Route says where a listener sends new clients.
type Route struct {
	// Backends are "host:port" addresses, chosen round-robin. Empty means new clients are refused.
	Backends []string
	// Refusal says why there is no backend; clients receive it as a RESP error line.
	Refusal string
}
