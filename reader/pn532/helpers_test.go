package pn532_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
)

// testOpts keeps every timeout short; the fake clock makes them cheap anyway.
func testOpts() pn532.Opts {
	return pn532.Opts{
		PollInterval: 10 * time.Millisecond,
		ACKTimeout:   15 * time.Millisecond,
		ReplyTimeout: 100 * time.Millisecond,
		StatusPoll:   time.Millisecond,
		Backoff:      20 * time.Millisecond,
		MaxBackoff:   100 * time.Millisecond,
		ResetAfter:   2,
		ResetPulse:   time.Millisecond,
		ResetSettle:  time.Millisecond,
		LogEvery:     time.Hour,
	}
}

// guard is how long a test waits for something that should happen at once:
// a hang guard, not a timing assertion.
const guard = 10 * time.Second

// noLeaks fails the test if it leaves goroutines behind. Register it first:
// cleanups run last-in first-out.
func noLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		n := runtime.NumGoroutine()
		for n > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		if n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines left behind (was %d):\n%s", n-before, before, buf)
		}
	})
}

// autoAdvance moves the fake clock whenever somebody waits on it, so that
// timeouts, poll intervals and backoff take no real time.
func autoAdvance(t testing.TB, fk *clock.Fake) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if fk.Timers() > 0 {
				fk.Advance(time.Millisecond)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	t.Cleanup(func() { close(done); wg.Wait() })
}

// logWriter sends slog output to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type rig struct {
	t    testing.TB
	clk  *clock.Fake
	chip *pn532emu.Chip
	dev  *pn532.Dev
}

type rigOpts struct {
	chip   *pn532emu.Opts
	drv    *pn532.Opts
	noIRQ  bool
	noRST  bool
	irq    pn532.IRQ    // overrides the chip's line
	silent bool         // no debug logs
	log    *slog.Logger // overrides the test logger
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	fk := clock.NewFake(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	autoAdvance(t, fk)
	chip := pn532emu.New(fk, o.chip)
	t.Cleanup(func() { chip.Close() })
	var irq pn532.IRQ = chip.IRQ()
	if o.irq != nil {
		irq = o.irq
	}
	if o.noIRQ {
		irq = nil
	}
	var rst pn532.Reset = chip.Reset()
	if o.noRST {
		rst = nil
	}
	opts := testOpts()
	if o.drv != nil {
		opts = *o.drv
	}
	log := testLogger(t)
	if o.silent {
		log = slog.New(slog.DiscardHandler)
	}
	if o.log != nil {
		log = o.log
	}
	dev, err := pn532.NewSPI(chip, irq, rst, fk, log, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Halt() })
	return &rig{t: t, clk: fk, chip: chip, dev: dev}
}

// run starts Run; the returned stop cancels it and checks how it ended.
func (r *rig) run() (events chan reader.Event, stop func()) {
	events = make(chan reader.Event, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.dev.Run(ctx, events) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					r.t.Errorf("Run returned %v, want context.Canceled", err)
				}
			case <-time.After(guard):
				r.t.Errorf("Run did not return after cancel")
			}
		})
	}
	r.t.Cleanup(stop)
	return events, stop
}

// next waits for the next event.
func next(t testing.TB, events <-chan reader.Event) reader.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(guard):
		t.Fatal("no event")
	}
	return reader.Event{}
}

// nextTap waits for a tap, failing on a health event.
func nextTap(t testing.TB, events <-chan reader.Event) reader.Tap {
	t.Helper()
	ev := next(t, events)
	if ev.Tap == nil {
		t.Fatalf("got health %+v, want a tap", *ev.Health)
	}
	return *ev.Tap
}

// cycles waits until the driver has run n more poll cycles.
func (r *rig) cycles(n int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	seq := r.chip.ListSeq()
	if err := r.chip.WaitListSeq(ctx, seq+n); err != nil {
		r.t.Fatalf("waiting for %d poll cycles: %v", n, err)
	}
}

// quiet checks that no event is waiting.
func quiet(t testing.TB, events <-chan reader.Event) {
	t.Helper()
	select {
	case ev := <-events:
		if ev.Tap != nil {
			t.Fatalf("unexpected tap % X", ev.Tap.UID)
		}
		t.Fatalf("unexpected health %+v", *ev.Health)
	default:
	}
}

// logRecorder is a slog.Handler that keeps every record's level and message.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// count reports how many records at level have msg containing sub.
func (h *logRecorder) count(level slog.Level, sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level == level && strings.Contains(r.Message, sub) {
			n++
		}
	}
	return n
}
