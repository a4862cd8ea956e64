package centralweb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/uitpas/tap-kiosk/fleet"
)

// How the snapshot is kept. Reading a thousand kiosks from the registry
// takes tens of milliseconds, too long to do inside every scrape (the target
// is 50 ms for the whole scrape), so while the site is in use (a request in
// the last inUse) Serve's refresher keeps a snapshot ready: every
// SnapshotEvery/2 it asks the feeder whether the registry was written since
// (its Flushes counter) and reads it again only then, and it builds the
// metric families ahead of the next scrape. Without the refresher (a
// Handler used on its own, a first request after a quiet spell) a request
// reads the registry itself when the snapshot is SnapshotEvery old.
const (
	inUse = 2 * time.Minute
	// reage: unchanged kiosks' families are made again this often, so that
	// the figures that age (oldest pending, last tap) stay current.
	reage = 5 * time.Second
)

// snapshot is the registry as read at one time, shared by scrapes and
// pages. It is not changed once published, but for checked and its
// families, made once.
type snapshot struct {
	taken        time.Time // the figures' time (when read, or aged to)
	read         time.Time // when the registry was read
	devices      []fleet.Device
	fleetVersion string
	err          error
	flushes      int64        // the feeder's Flushes before the read; -1 without a feeder
	checked      atomic.Int64 // unix ns when last known current

	once     sync.Once
	families bool   // made (tests)
	text, gz []byte // the fleet and per-kiosk metrics, encoded; and gzipped
	famErr   error
}

func (s *Server) flushes() int64 {
	if s.o.Feeder == nil {
		return -1
	}
	return s.o.Feeder.Counters().Flushes
}

// readSnapshot reads the registry.
func (s *Server) readSnapshot(ctx context.Context) *snapshot {
	fl := s.flushes()
	now := s.o.Clock.Now()
	ds, err := s.o.Registry.Devices(ctx)
	if err != nil {
		s.log.Warn("fleet registry unreadable", "err", err)
	}
	snap := &snapshot{taken: now, read: now, devices: ds, fleetVersion: fleet.FleetVersion(ds), err: err, flushes: fl}
	snap.checked.Store(now.UnixNano())
	return snap
}

// snapshotNow returns the snapshot, reading the registry when it was last
// known current SnapshotEvery ago or more.
func (s *Server) snapshotNow(ctx context.Context) *snapshot {
	now := s.o.Clock.Now()
	s.lastUse.Store(now.UnixNano())
	if s.o.Registry == nil {
		return &snapshot{taken: now, read: now}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.snap; cur != nil {
		if age := now.Sub(time.Unix(0, cur.checked.Load())); age >= 0 && age < s.o.SnapshotEvery {
			return cur
		}
	}
	s.snap = s.readSnapshot(ctx)
	return s.snap
}

// refresh keeps the snapshot current while the site is in use, until ctx ends.
func (s *Server) refresh(ctx context.Context) {
	if s.o.Registry == nil {
		return
	}
	every := s.o.SnapshotEvery / 2
	t := s.o.Clock.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		t.Reset(every)
		now := s.o.Clock.Now()
		if now.Sub(time.Unix(0, s.lastUse.Load())) > inUse {
			continue
		}
		s.mu.Lock()
		cur := s.snap
		s.mu.Unlock()
		var next *snapshot
		switch fl := s.flushes(); {
		case cur == nil || fl < 0 || fl != cur.flushes:
			next = s.readSnapshot(ctx)
		case now.Sub(cur.taken) >= reage:
			next = &snapshot{taken: now, read: cur.read, devices: cur.devices, fleetVersion: cur.fleetVersion, err: cur.err, flushes: cur.flushes}
			next.checked.Store(now.UnixNano())
		default:
			cur.checked.Store(now.UnixNano()) // unchanged: still current
			continue
		}
		if now.Sub(time.Unix(0, s.lastScrape.Load())) <= inUse {
			next.encoded(s.descs) // ahead of the next scrape
		}
		s.mu.Lock()
		s.snap = next
		s.mu.Unlock()
	}
}

// encoded returns the snapshot's fleet and per-kiosk metrics in the text
// exposition format, plain and gzipped, made once: a scrape then only
// copies them.
func (snap *snapshot) encoded(d *descs) (text, gz []byte, err error) {
	snap.once.Do(func() {
		r := prometheus.NewRegistry()
		if snap.famErr = r.Register(&kioskCollector{snap: snap, d: d}); snap.famErr != nil {
			return
		}
		fams, err := r.Gather()
		snap.famErr = err
		var b bytes.Buffer
		for _, f := range fams {
			if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
				snap.famErr = errors.Join(snap.famErr, err)
			}
		}
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		zw.Write(b.Bytes())
		zw.Close()
		snap.text, snap.gz, snap.families = b.Bytes(), z.Bytes(), true
	})
	return snap.text, snap.gz, snap.famErr
}

// serveMetrics is /metrics in the text exposition format (0.0.4, which
// every Prometheus reads): the ingest's registry gathered now, then the
// snapshot's metrics as encoded once. With gzip the two parts are two gzip
// members, which a gzip reader reads as one stream (RFC 1952).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	fams, err := s.prom.Gather()
	if err != nil {
		s.log.Warn("metrics gather", "err", err)
	}
	var text, gz []byte
	if s.o.Registry != nil {
		if text, gz, err = s.snapshotNow(r.Context()).encoded(s.descs); err != nil {
			s.log.Warn("metrics of the fleet", "err", err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	var zw *gzip.Writer
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	if r.Method == http.MethodHead {
		return
	}
	bw := bufio.NewWriter(out)
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(bw, f); err != nil {
			s.log.Warn("metrics encode", "err", err)
			return
		}
	}
	bw.Flush()
	if zw != nil {
		zw.Close()
		w.Write(gz)
		return
	}
	w.Write(text)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
