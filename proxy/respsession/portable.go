package respsession

import "github.com/sentinel-proxy/sentinel-proxy/proxy"

// Portable serves RESP sessions with goroutines: any system, and listeners with TLS on either side.
var Portable proxy.Handler = portable{}

type portable struct{}

func (portable) Name() string { return "resp-portable" }

func (portable) Serve(c *proxy.Client) {
	c.Refuse("resp mode on goroutines (TLS, forwarder = \"portable\") is not built yet")
}
