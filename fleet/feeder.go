package fleet

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/protocol"
)

// FeederOpts configure a Feeder.
type FeederOpts struct {
	Logger *slog.Logger
	Clock  clock.Clock
	// FlushEvery is the least time between two writes of the registry
	// (default 250 ms): what arrives meanwhile is coalesced per device, and
	// the ledger's writer (SQLite has one) is held at most four times a
	// second.
	FlushEvery time.Duration
	// MaxPerDevice bounds the messages kept per device between two writes
	// (default 64); beyond it the oldest are dropped (and counted).
	MaxPerDevice int
}

// Feeder takes Status messages and booked checkins from the ingest's
// goroutines without blocking them, and writes them to the Registry from its
// own goroutine (Run), coalesced per device: of consecutive messages that
// say the same online state only the newest is written, so a burst of
// Status changes costs one row update while no online/offline transition is
// lost; of the checkins only each device's latest time.
type Feeder struct {
	r   *Registry
	o   FeederOpts
	log *slog.Logger

	mu       sync.Mutex
	pending  map[string][]Message
	checkins map[string]time.Time
	kick     chan struct{}
	c        feederCounters
}

type feederCounters struct {
	offered, coalesced, overflow, applied, transitions, duplicates, stale, flushes, dbErrors, checkins atomic.Int64
}

// FeederCounters are what a Feeder has done since it was made.
type FeederCounters struct {
	Offered     int64 // Status messages handed to it
	Coalesced   int64 // replaced by a newer one of the same state before being written
	Overflow    int64 // dropped: more than MaxPerDevice waiting for one device
	Applied     int64 // written (transitions included)
	Transitions int64
	Duplicates  int64 // the same as stored (retained again)
	Stale       int64 // older than the stored Status
	Checkins    int64 // checkins noted
	Flushes     int64 // registry transactions committed
	DBErrors    int64 // failed transactions (tried again)
}

// NewFeeder returns a Feeder writing to r; start it with Run.
func (r *Registry) NewFeeder(o FeederOpts) *Feeder {
	if o.Logger == nil {
		o.Logger = r.log
	}
	if o.Clock == nil {
		o.Clock = r.clk
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 250 * time.Millisecond
	}
	if o.MaxPerDevice <= 0 {
		o.MaxPerDevice = 64
	}
	return &Feeder{r: r, o: o, log: o.Logger, pending: map[string][]Message{},
		checkins: map[string]time.Time{}, kick: make(chan struct{}, 1)}
}

// Counters returns a snapshot of the counters.
func (f *Feeder) Counters() FeederCounters {
	c := &f.c
	return FeederCounters{Offered: c.offered.Load(), Coalesced: c.coalesced.Load(), Overflow: c.overflow.Load(),
		Applied: c.applied.Load(), Transitions: c.transitions.Load(), Duplicates: c.duplicates.Load(),
		Stale: c.stale.Load(), Checkins: c.checkins.Load(), Flushes: c.flushes.Load(), DBErrors: c.dbErrors.Load()}
}

func (f *Feeder) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Status queues a decoded Status (s) with its payload; it never blocks. It
// is the ingest's hook (ingest.FleetSink).
func (f *Feeder) Status(s protocol.Status, raw []byte, receivedAt time.Time, retained bool) {
	m := Message{Status: s, Raw: append([]byte(nil), raw...), ReceivedAt: receivedAt, Retained: retained}
	f.c.offered.Add(1)
	f.mu.Lock()
	q := f.pending[s.DeviceID]
	if n := len(q); n > 0 && q[n-1].Status.Online == m.Status.Online && q[n-1].IsWill() == m.IsWill() {
		if older(m, q[n-1]) {
			f.c.stale.Add(1) // the one queued is newer: keep it
		} else {
			q[n-1] = m
			f.c.coalesced.Add(1)
		}
	} else {
		q = append(q, m)
		if len(q) > f.o.MaxPerDevice {
			q = append(q[:0], q[len(q)-f.o.MaxPerDevice:]...)
			f.c.overflow.Add(1)
		}
	}
	f.pending[s.DeviceID] = q
	f.mu.Unlock()
	f.wake()
}

// Checkin notes that a checkin of device was booked; it never blocks. It is
// the ingest's hook (ingest.FleetSink).
func (f *Feeder) Checkin(device string, receivedAt time.Time) {
	f.mu.Lock()
	if t, ok := f.checkins[device]; !ok || t.Before(receivedAt) {
		f.checkins[device] = receivedAt
	}
	f.mu.Unlock()
	f.c.checkins.Add(1)
	f.wake()
}

// Run writes what is queued until ctx ends, then writes what is left and
// returns.
func (f *Feeder) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			f.Flush(context.Background())
			return nil
		case <-f.kick:
		}
		ok := f.Flush(ctx)
		wait := f.o.FlushEvery
		if !ok {
			wait = max(wait, time.Second)
		}
		t := f.o.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Flush(context.Background())
			return nil
		case <-t.C():
		}
		if !ok {
			f.wake()
		}
	}
}

// Flush writes what is queued now, in one transaction; on failure it keeps
// it queued (before what arrived meanwhile) and reports false.
func (f *Feeder) Flush(ctx context.Context) bool {
	f.mu.Lock()
	pending, checkins := f.pending, f.checkins
	if len(pending) == 0 && len(checkins) == 0 {
		f.mu.Unlock()
		return true
	}
	f.pending, f.checkins = map[string][]Message{}, map[string]time.Time{}
	f.mu.Unlock()

	devices := make([]string, 0, len(pending))
	for d := range pending {
		devices = append(devices, d)
	}
	sort.Strings(devices) // a fixed lock order on PostgreSQL
	var msgs []Message
	for _, d := range devices {
		msgs = append(msgs, pending[d]...)
	}
	out, err := f.r.Apply(ctx, msgs, checkins)
	if err != nil {
		f.c.dbErrors.Add(1)
		f.log.Error("fleet registry write failed; trying again", "statuses", len(msgs), "checkins", len(checkins), "err", err)
		f.mu.Lock()
		for d, q := range f.pending {
			pending[d] = append(pending[d], q...)
		}
		for d, t := range f.checkins {
			if old, ok := checkins[d]; !ok || old.Before(t) {
				checkins[d] = t
			}
		}
		f.pending, f.checkins = pending, checkins
		f.mu.Unlock()
		return false
	}
	f.c.flushes.Add(1)
	for i, o := range out {
		switch o {
		case Applied:
			f.c.applied.Add(1)
		case Transition:
			f.c.applied.Add(1)
			f.c.transitions.Add(1)
			f.log.Info("kiosk "+map[bool]string{true: StateOnline, false: StateOffline}[msgs[i].Status.Online],
				"device", msgs[i].Status.DeviceID, "will", msgs[i].IsWill(), "retained", msgs[i].Retained)
		case Duplicate:
			f.c.duplicates.Add(1)
		case Stale:
			f.c.stale.Add(1)
			f.log.Debug("stale status ignored", "device", msgs[i].Status.DeviceID, "at", msgs[i].Status.At)
		}
	}
	return true
}

// older reports whether a says it is older than b by their synchronised
// "at" (the rule Apply uses against the stored Status).
func older(a, b Message) bool {
	if !a.Status.ClockSynced || !b.Status.ClockSynced {
		return false
	}
	ta, errA := protocol.ParseTime(a.Status.At)
	tb, errB := protocol.ParseTime(b.Status.At)
	return errA == nil && errB == nil && ta.Before(tb)
}
