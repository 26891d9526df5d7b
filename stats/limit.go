package stats

import (
	"net/http"
	"sync"
	"time"
)

// Failed logins per client address: after loginFailures within loginWindow, the address gets 429 until
// the window ends. Log lines are spaced by a second per address, so a scan cannot flood the log.
const (
	loginFailures = 10
	loginWindow   = time.Minute
	maxTracked    = 10000
)

type loginLimiter struct {
	mu  sync.Mutex
	ips map[string]*loginRecord
}

type loginRecord struct {
	since   time.Time // start of the window
	fails   int
	lastLog time.Time
}

// blocked reports whether ip has used up its failures, and for how much longer.
func (l *loginLimiter) blocked(ip string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.ips[ip]
	if rec == nil || now.Sub(rec.since) >= loginWindow {
		return 0, false
	}
	if rec.fails >= loginFailures {
		return rec.since.Add(loginWindow).Sub(now), true
	}
	return 0, false
}

// fail counts a failed login and says whether to log it.
func (l *loginLimiter) fail(ip string, now time.Time) (fails int, log bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ips == nil {
		l.ips = map[string]*loginRecord{}
	}
	rec := l.ips[ip]
	if rec == nil || now.Sub(rec.since) >= loginWindow {
		if len(l.ips) >= maxTracked {
			l.prune(now)
		}
		rec = &loginRecord{since: now}
		l.ips[ip] = rec
	}
	rec.fails++
	if now.Sub(rec.lastLog) >= time.Second {
		rec.lastLog = now
		return rec.fails, true
	}
	return rec.fails, false
}

// prune forgets expired windows; if every address is recent, the map is reset rather than grown
// without bound (an attacker with many addresses then gets fresh windows, not unbounded memory).
func (l *loginLimiter) prune(now time.Time) {
	for ip, rec := range l.ips {
		if now.Sub(rec.since) >= loginWindow {
			delete(l.ips, ip)
		}
	}
	if len(l.ips) >= maxTracked {
		l.ips = map[string]*loginRecord{}
	}
}

// NewHTTPServer returns the stats port's HTTP server with timeouts that keep slow or idle clients from
// holding it (slowloris): headers within 5 s, a whole request within 10 s, bounded header size.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
}
