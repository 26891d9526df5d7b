// Package stats serves the operator's view: an HTML page in the spirit of HAProxy's stats page (with
// admin actions), the same data as JSON and CSV, Prometheus metrics, /healthz and /readyz. It reads
// snapshots and counters; the only way it changes routing is through the Control it is given.
package stats

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

//go:embed templates/*.html
var templates embed.FS

// GroupPorts are the listeners of one master group, for the page to show and admin actions to act on.
// Replica may be nil.
type GroupPorts struct {
	Name    string
	Mode    string // "tcp" or "resp": how its ports serve clients
	Master  *proxy.Listener
	Replica *proxy.Listener
	// Durability is the group's wait_replicas and what its sessions count (resp mode; nil in tcp
	// mode).
	Durability *respsession.Durability
	// Multiplex, set when the group's sessions share backend connections (multiplex = true), counts
	// the shared connections open to nodes and the sessions that left one of them for their own.
	Multiplex func(nodes []string) (conns, unshared uint64)
}

// Control is what admin actions act through. Package server implements it on the router and the listeners.
type Control interface {
	// SetAdminState sets a node's admin state and returns once the routing decision that follows has
	// been applied (for MAINT: its sessions closed).
	SetAdminState(ctx context.Context, node string, st routing.AdminState) error
	// KillSessions closes every session to node on every listener and returns how many.
	KillSessions(node string) int
}

// Server renders the stats. Set every field but Control and Metrics, which may be nil: without
// Control (or with Admin false) the page has no admin actions; without Metrics there is no /metrics.
type Server struct {
	User, Password string
	PasswordHash   string // bcrypt hash instead of Password
	Admin          bool
	Control        Control
	Snapshot       func() *routing.Snapshot
	History        func(group string) []routing.Switch
	// NoMasterSpans, if set, gives the group's stretches without a master, for the charts' bands.
	NoMasterSpans func(group string) []routing.NoMasterSpan
	Groups        []GroupPorts
	Metrics       *Metrics
	Version       string
	Log           zerolog.Logger
	Started       time.Time

	// SampleEvery is how often RecordHistory samples the listeners for the charts; zero is 10 s. The
	// charts keep 360 samples whatever it is: an hour at 10 s.
	SampleEvery time.Duration

	// Reload, if set, re-reads the configuration; POST /-/reload calls it (sentinel-proxy reload).
	Reload func() error
	// Switchover, if set, runs planned switchovers: POST /-/switchover (sentinel-proxy switchover).
	Switchover Switchover

	settings     atomic.Pointer[Settings]
	bcryptOK     atomic.Pointer[[32]byte]
	limiter      loginLimiter
	shuttingDown atomic.Bool
	handlerOnce  sync.Once
	handler      http.Handler
	csrfKey      []byte
	adminMu      sync.Mutex
	adminLog     []AdminAction // newest last, at most adminLogLen
	history      history
	unconfirmed  unconfirmedWatch // when each group's writes last went unconfirmed
	pageTmpl     *template.Template
	confirmTm    *template.Template
	switchTm     *template.Template
}

const adminLogLen = 20

// Settings are what a reload may change while the server runs.
type Settings struct {
	User, Password string
	PasswordHash   string // bcrypt; when set, Password is not used
	Admin          bool
	Groups         []GroupPorts
}

// cur returns the settings in force: Update's, or the fields the server was made with (stored once by
// Handler, so a request does not build them again).
func (s *Server) cur() *Settings {
	if set := s.settings.Load(); set != nil {
		return set
	}
	return s.initialSettings()
}

func (s *Server) initialSettings() *Settings {
	return &Settings{User: s.User, Password: s.Password, PasswordHash: s.PasswordHash, Admin: s.Admin, Groups: s.Groups}
}

// Update applies reloaded settings: credentials, admin on or off, the groups shown.
func (s *Server) Update(set Settings) {
	s.settings.Store(&set)
	if s.Metrics != nil {
		s.Metrics.initGroups(set.Groups)
	}
}

// reload answers sentinel-proxy reload: 200 when the new configuration is in force, 422 with every
// problem when it was rejected (the running one is kept).
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Reload(); err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte("rejected; the running configuration is kept:\n" + err.Error() + "\n"))
		return
	}
	_, _ = w.Write([]byte("reloaded\n"))
}

// Handler returns the HTTP routes: /healthz and /readyz without auth, everything else behind basic auth.
// It builds them once: a server moved to another address by a reload serves the same handler.
func (s *Server) Handler() http.Handler {
	s.handlerOnce.Do(func() { s.handler = s.buildHandler() })
	return s.handler
}

// ShuttingDown makes /readyz answer 503 from now on: the proxy is draining and accepts no new client.
func (s *Server) ShuttingDown() { s.shuttingDown.Store(true) }

func (s *Server) buildHandler() http.Handler {
	s.settings.CompareAndSwap(nil, s.initialSettings())
	funcs := template.FuncMap{
		"bytes": humanBytes, "ago": ago, "dur": roundDuration, "lower": strings.ToLower,
		"list":  func(s ...string) []string { return s },
		"minus": func(a, b float64) float64 { return a - b },
		"half":  func(a, b float64) float64 { return (a + b) / 2 },
		"split": func(s string) []string { return strings.Split(s, ",") }, // Sentinel's flags, to wrap after each comma
	}
	s.pageTmpl = template.Must(template.New("page.html").Funcs(funcs).ParseFS(templates, "templates/page.html", "templates/chart.html"))
	s.confirmTm = template.Must(template.New("confirm.html").Funcs(funcs).ParseFS(templates, "templates/confirm.html"))
	s.switchTm = template.Must(template.New("switchover.html").ParseFS(templates, "templates/switchover.html"))
	s.csrfKey = make([]byte, 32)
	_, _ = rand.Read(s.csrfKey) // crypto/rand.Read never fails on Linux; a zero key would still be per-user

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /stats", s.auth(http.HandlerFunc(s.page)))
	mux.Handle("GET /stats.json", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.build(r))
	})))
	mux.Handle("GET /stats.csv", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		writeCSV(w, s.build(r))
	})))
	if s.Metrics != nil {
		s.Metrics.register(s)
		mux.Handle("GET /metrics", s.auth(promhttp.HandlerFor(s.Metrics.registry, promhttp.HandlerOpts{})))
	}
	if s.Control != nil {
		// Two defences against cross-site requests: the browser's own Sec-Fetch-Site/Origin headers
		// (net/http's CrossOriginProtection) and a token only the page carries.
		cop := http.NewCrossOriginProtection()
		cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.Log.Warn().Str("event", "admin_rejected").Str("user", userOf(r)).Str("remote", r.RemoteAddr).
				Str("reason", "cross-origin request").Str("origin", r.Header.Get("Origin")).Msg("admin request rejected")
			http.Error(w, "cross-origin admin request refused", http.StatusForbidden)
		}))
		mux.Handle("POST /admin", s.auth(cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !s.cur().Admin {
				http.Error(w, "admin actions are off ([stats].admin = false)", http.StatusNotFound)
				return
			}
			s.admin(w, r)
		}))))
	}
	if s.Reload != nil {
		mux.Handle("POST /-/reload", s.auth(http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.reload))))
	}
	if s.Switchover != nil {
		mux.Handle("POST /-/switchover", s.auth(http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.switchover))))
	}
	mux.Handle("GET /{$}", http.RedirectHandler("/stats", http.StatusFound))
	return securityHeaders(mux)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type userKey struct{}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := remoteIP(r)
		if retry, blocked := s.limiter.blocked(ip, time.Now()); blocked {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			http.Error(w, "too many failed logins; try again later", http.StatusTooManyRequests)
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok || !s.credentialsOK(user, pass) {
			if ok { // a browser's first request carries no credentials: that is not a failed login
				s.failedLogin(r, ip, user)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="sentinel-proxy statistics", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

// credentialsOK compares in constant time. With a bcrypt hash configured, a password that matched once
// is remembered by its SHA-256, so that each page load does not pay bcrypt's deliberate slowness.
func (s *Server) credentialsOK(user, pass string) bool {
	set := s.cur()
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(set.User)) == 1
	if set.PasswordHash == "" {
		passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(set.Password)) == 1
		return userOK && passOK
	}
	sum := sha256.Sum256([]byte(set.PasswordHash + "\x00" + pass))
	if cached := s.bcryptOK.Load(); cached != nil && subtle.ConstantTimeCompare(cached[:], sum[:]) == 1 {
		return userOK
	}
	if bcrypt.CompareHashAndPassword([]byte(set.PasswordHash), []byte(pass)) != nil {
		return false
	}
	s.bcryptOK.Store(&sum)
	return userOK
}

func (s *Server) failedLogin(r *http.Request, ip, user string) {
	fails, logNow := s.limiter.fail(ip, time.Now())
	if !logNow {
		return
	}
	// The attempted user name is logged (it helps tell a typo from a scan); the password never is.
	s.Log.Warn().Str("event", "stats_auth_failed").Str("remote", ip).Str("user", user).Str("path", r.URL.Path).
		Int("failures", fails).Msg("failed login on the stats port")
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func userOf(r *http.Request) string {
	u, _ := r.Context().Value(userKey{}).(string)
	return u
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	p := s.build(r)
	for i := range p.Groups {
		p.Groups[i].Charts = groupCharts(p.Groups[i].Name, p.Groups[i].HistorySeries)
	}
	if err := s.pageTmpl.Execute(w, p); err != nil {
		s.Log.Error().Err(err).Msg("render stats page")
	}
}

// readyz answers 200 when every master group has a verified master, for load balancers and
// Kubernetes readiness probes; otherwise 503 with the reasons.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	snap := s.Snapshot()
	var problems []string
	if s.shuttingDown.Load() {
		problems = append(problems, "shutting down: no new clients are accepted")
	}
	for _, g := range s.cur().Groups {
		gs := snap.Group(g.Name)
		switch {
		case gs == nil:
			problems = append(problems, g.Name+": not decided yet")
		case gs.Master == "":
			problems = append(problems, g.Name+": "+gs.NoMasterReason)
		}
	}
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n" + strings.Join(problems, "\n") + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
