package main

// The opt-in HTTP listener (-http): /metrics and the fleet pages. The logic
// is in package centralweb.

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/uitpas/tap-kiosk/centralweb"
	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
)

type httpConfig struct {
	addr, auth string
}

// httpFlag declares serve's -http and -http-auth.
func httpFlag(fs *flag.FlagSet) *httpConfig {
	h := &httpConfig{}
	fs.StringVar(&h.addr, "http", "", "serve /metrics (Prometheus) and the read-only fleet pages (/, /kiosk/D, /reports) on this `address`,\n"+
		"e.g. 127.0.0.1:9464; nothing listens without it. Keep it on loopback behind a reverse proxy (deploy/README.md)")
	fs.StringVar(&h.auth, "http-auth", "", "require HTTP basic auth on every route: `USER:SHA256HEX`, the hex SHA-256 of the password\n"+
		"(printf %s 'password' | sha256sum); a value starting with @ names a file holding it (mode 0600)")
	return h
}

// web is the listener between open and serve; a nil *web does nothing.
type web struct {
	srv *centralweb.Server
	ln  net.Listener
	so  *ingest.ServiceOpts
	log *slog.Logger
}

// open checks the flags, opens the listener (so a taken port fails at start)
// and sets so.OnBatch; nil when -http is not given.
func (h *httpConfig) open(ctx context.Context, fleetOn bool, l *ingest.Ledger, log *slog.Logger, so *ingest.ServiceOpts) (*web, error) {
	if h.addr == "" {
		if h.auth != "" {
			return nil, usagef("-http-auth needs -http")
		}
		return nil, nil
	}
	if err := centralweb.CheckAddr(h.addr); err != nil {
		return nil, usagef("-http %q: want host:port such as 127.0.0.1:9464", h.addr)
	}
	var auth *centralweb.BasicAuth
	if h.auth != "" {
		v, err := readSecret(h.auth)
		if err != nil {
			return nil, usagef("-http-auth %s: %v", h.auth, err)
		}
		if auth, err = centralweb.ParseBasicAuth(v); err != nil {
			return nil, usagef("-http-auth: want USER:SHA256HEX (64 hex digits of the password's SHA-256)")
		}
	}
	o := centralweb.Opts{Ledger: l, Batches: centralweb.NewBatchMetrics(), Clock: so.Clock, Auth: auth, Logger: log, Version: version}
	if fleetOn {
		// A second handle on the registry the feeder writes (migrations are
		// applied once; Open is idempotent): the pages and metrics read it.
		reg, err := fleet.Open(ctx, l.DB(), l.Dialect(), fleet.Opts{Logger: log, Clock: so.Clock})
		if err != nil {
			return nil, err
		}
		o.Registry = reg
		if f, ok := so.Fleet.(*fleet.Feeder); ok {
			o.Feeder = f
		}
	}
	so.OnBatch = o.Batches.Observe
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return nil, err
	}
	w := &web{ln: ln, so: so, log: log}
	if w.srv, err = centralweb.New(o); err != nil {
		ln.Close()
		return nil, err
	}
	return w, nil
}

// serve starts serving with svc's counters; the returned stop waits for
// the listener to close once ctx has ended.
func (w *web) serve(ctx context.Context, svc *ingest.Service) (stop func()) {
	if w == nil {
		return func() {}
	}
	w.srv.SetIngest(svc)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.srv.Serve(ctx, w.ln); err != nil && !errors.Is(err, context.Canceled) {
			w.log.Error("http listener stopped", "addr", w.ln.Addr().String(), "err", err)
		}
	}()
	w.log.Info("http listening", "addr", w.ln.Addr().String(), "auth", w.srv.HasAuth())
	return func() {
		cancel()
		<-done
		w.srv.Close()
	}
}

// readSecret returns v, or the first line of the file @v names.
func readSecret(v string) (string, error) {
	if !strings.HasPrefix(v, "@") {
		return v, nil
	}
	b, err := os.ReadFile(v[1:])
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// closeListener releases a listener that will not be served (the service
// could not be made).
func (w *web) closeListener() {
	if w != nil && w.ln != nil {
		w.ln.Close()
	}
}
