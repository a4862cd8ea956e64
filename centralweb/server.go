package centralweb

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "time/tzdata" // Europe/Brussels must resolve on a host without zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/report"
)

// ErrInvalid is a bad option (an address, an auth value).
var ErrInvalid = errors.New("invalid value")

// Ingest is what the metrics read from the running ingest service
// (*ingest.Service).
type Ingest interface {
	Counters() ingest.Counters
	Connected() bool
}

// FeederStats is what the metrics read from the fleet feeder (*fleet.Feeder).
type FeederStats interface {
	Counters() fleet.FeederCounters
}

// Opts configure a Server. Every field may be left out: what is missing is
// not shown (no registry: no kiosks; no ledger: no reports).
type Opts struct {
	// Registry is the fleet registry the pages and per-kiosk metrics read.
	Registry *fleet.Registry
	// Ledger is the ledger the reports read (through report's read-only handle).
	Ledger *ingest.Ledger
	// Ingest and Feeder supply the ingest's counters; Batches its histograms
	// (fed by ingest.ServiceOpts.OnBatch).
	Ingest  Ingest
	Feeder  FeederStats
	Batches *BatchMetrics
	// Thresholds decide the alerts shown on the pages (fleet's defaults when zero).
	Thresholds *fleet.Thresholds
	Clock      clock.Clock
	// Location is the zone of the dates shown and of the reports' days
	// (default Europe/Brussels).
	Location *time.Location
	// Auth, when set, requires HTTP basic auth on every route.
	Auth   *BasicAuth
	Logger *slog.Logger
	// SnapshotEvery is the longest a registry snapshot is reused (default 1 s).
	SnapshotEvery time.Duration
	// Version is shown in the pages' footer.
	Version string
}

// Server serves /metrics and the fleet pages. Close it when done.
type Server struct {
	o      Opts
	log    *slog.Logger
	prom   *prometheus.Registry
	h      http.Handler
	report *report.Reader

	descs   *descs
	mu      sync.Mutex // guards snap; held while a snapshot is taken on demand
	snap    *snapshot
	lastUse atomic.Int64 // unix ns of the last request that read the registry
	// lastScrape: of the last /metrics; the refresher encodes the metrics
	// ahead only while they are scraped.
	lastScrape atomic.Int64
}

// New makes a Server; it listens only in Serve.
func New(o Opts) (*Server, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Location == nil {
		loc, err := time.LoadLocation(report.DefaultZone)
		if err != nil {
			return nil, fmt.Errorf("centralweb: zone: %w", err)
		}
		o.Location = loc
	}
	if o.Thresholds == nil {
		th := fleet.DefaultThresholds()
		o.Thresholds = &th
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = time.Second
	}
	s := &Server{o: o, log: o.Logger, prom: prometheus.NewRegistry()}
	if o.Ledger != nil {
		r, err := report.Open(o.Ledger)
		if err != nil {
			return nil, fmt.Errorf("centralweb: reports: %w", err)
		}
		s.report = r
	}
	s.descs = newDescs()
	if err := s.prom.Register(&ingestCollector{s: s, d: s.descs}); err != nil {
		return nil, fmt.Errorf("centralweb: metrics: %w", err)
	}
	if o.Batches != nil {
		if err := o.Batches.register(s.prom); err != nil {
			return nil, fmt.Errorf("centralweb: metrics: %w", err)
		}
	}
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := s.prom.Register(c); err != nil {
			return nil, fmt.Errorf("centralweb: metrics: %w", err)
		}
	}
	pages, err := newPages(s)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s.lastScrape.Store(s.o.Clock.Now().UnixNano())
		s.serveMetrics(w, r)
	})
	pages.routes(mux)
	s.h = s.guard(mux)
	return s, nil
}

// SetIngest supplies the ingest's counters once the service exists; call it
// before Serve.
func (s *Server) SetIngest(i Ingest) { s.o.Ingest = i }

// HasAuth reports whether basic auth is required.
func (s *Server) HasAuth() bool { return s.o.Auth != nil }

// Handler is the whole site: every route behind the method check and auth.
func (s *Server) Handler() http.Handler { return s.h }

// Close releases the report handle.
func (s *Server) Close() error {
	if s.report != nil {
		return s.report.Close()
	}
	return nil
}

// Serve serves on ln until ctx ends, then shuts down (in-flight requests get
// 5 s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	rctx, stopRefresh := context.WithCancel(ctx)
	refreshed := make(chan struct{})
	go func() { defer close(refreshed); s.refresh(rctx) }()
	defer func() { stopRefresh(); <-refreshed }()
	select {
	case err := <-done:
		return fmt.Errorf("centralweb: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("centralweb: shutdown: %w", err)
	}
	<-done
	return nil
}

// CheckAddr checks a listen address (host:port; the host may be empty for
// every interface, which the flag's documentation advises against).
func CheckAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("centralweb: address %q: want host:port such as 127.0.0.1:9464: %w", addr, ErrInvalid)
	}
	return nil
}

// guard allows GET and HEAD only, checks basic auth, and sets the headers
// every response carries.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		if s.o.Auth != nil && !s.o.Auth.ok(r) {
			h.Set("WWW-Authenticate", `Basic realm="kiosk-ingest", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// BasicAuth is one user and the SHA-256 of their password.
type BasicAuth struct {
	User string
	hash [sha256.Size]byte
}

// ParseBasicAuth reads USER:SHA256HEX, the hex SHA-256 of the password
// (`printf %s 'the password' | sha256sum`).
func ParseBasicAuth(v string) (*BasicAuth, error) {
	user, hx, ok := strings.Cut(strings.TrimSpace(v), ":")
	b, err := hex.DecodeString(hx)
	if !ok || user == "" || err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("centralweb: basic auth: want USER:SHA256HEX (64 hex digits of the password's SHA-256): %w", ErrInvalid)
	}
	a := &BasicAuth{User: user}
	copy(a.hash[:], b)
	return a, nil
}

func (a *BasicAuth) ok(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(p))
	uOK := subtle.ConstantTimeCompare([]byte(u), []byte(a.User))
	pOK := subtle.ConstantTimeCompare(h[:], a.hash[:])
	return uOK&pOK == 1
}
