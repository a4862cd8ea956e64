package device

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/device/host"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/reader"
)

// recDisplay records every screen shown.
type recDisplay struct {
	mu      sync.Mutex
	screens []display.Screen
	signals []display.Pattern
}

func (r *recDisplay) Show(s display.Screen) {
	r.mu.Lock()
	r.screens = append(r.screens, s)
	r.mu.Unlock()
}
func (r *recDisplay) Halt() error    { return nil }
func (r *recDisplay) String() string { return "rec" }
func (r *recDisplay) Signal(p display.Pattern) {
	r.mu.Lock()
	r.signals = append(r.signals, p)
	r.mu.Unlock()
}
func (r *recDisplay) last() display.Screen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.screens[len(r.screens)-1]
}

type kicks struct {
	mu           sync.Mutex
	kick, status int
}

func (k *kicks) Kick()          { k.mu.Lock(); k.kick++; k.mu.Unlock() }
func (k *kicks) StatusChanged() { k.mu.Lock(); k.status++; k.mu.Unlock() }

type rig struct {
	t      *testing.T
	core   *Core
	ob     *queue.Outbox
	clk    *clock.Fake
	disp   *recDisplay
	events chan reader.Event
	up     *kicks
	host   *host.Fixed
	cancel context.CancelFunc
	done   chan error
}

var brussels, _ = time.LoadLocation("Europe/Brussels")

func newRig(t *testing.T, mut func(*Opts, *queue.Opts)) *rig {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	qo := queue.Opts{Clock: clk, MinFreeBytes: -1}
	h := &host.Fixed{Synced: true, Boot: "boot-1", Up: func() time.Duration { return time.Minute }}
	o := Opts{DeviceID: "kiosk-test-01", Version: "test", Debounce: 3 * time.Second, Hold: 4 * time.Second,
		Location: brussels, Clock: clk, Host: h,
		Event: Event{ID: "evt-1", Title: "Leesclub", CounterID: "balie", Points: 1, Period: protocol.PeriodDay, Volume: 1,
			Blocked: map[string]bool{"04AABBCCDDEEFF": true}, CheckinCode: "LGIWNWB"}}
	if mut != nil {
		mut(&o, &qo)
	}
	ob, err := queue.Open(t.TempDir()+"/q.db", qo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	d := &recDisplay{}
	r := &rig{t: t, ob: ob, clk: clk, disp: d, events: make(chan reader.Event), up: &kicks{}, host: h, done: make(chan error, 1)}
	r.core = New(o, ob, d, d)
	r.core.SetUplink(r.up)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.core.Run(ctx, r.events) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// tap presents uid at the fake clock's now and returns the decision.
func (r *rig) tap(chip string) Decision {
	r.t.Helper()
	uid, err := reader.ParseChip(chip)
	if err != nil {
		r.t.Fatal(err)
	}
	want := (reader.Tap{UID: uid}).Chip()
	ch, cancel := r.core.Expect(want)
	defer cancel()
	r.events <- reader.Event{Tap: &reader.Tap{UID: uid, At: r.clk.Now()}}
	select {
	case d := <-ch:
		return d
	case <-time.After(5 * time.Second):
		r.t.Fatal("no decision")
	}
	return Decision{}
}

func (r *rig) pending() int {
	st, err := r.ob.Stats(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return st.Pending
}

func TestSavedIsDurableAndQueuedOnce(t *testing.T) {
	r := newRig(t, nil)
	d := r.tap("042F51B2712380")
	if d.Outcome != OutcomeSaved || d.Seq != 1 || d.ID == "" {
		t.Fatalf("first tap: %+v", d)
	}
	if s := r.disp.last(); s.Kind != display.Saved || s.Points != 1 {
		t.Fatalf("screen %+v", s)
	}
	items, err := r.ob.Pending(context.Background(), 0, 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("pending %v %v", items, err)
	}
	c, err := protocol.DecodeCheckin(items[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != d.ID || c.ChipNumber != "042F51B2712380" || c.EventID != "evt-1" || c.CounterID != "balie" ||
		c.TappedAt != "2026-11-24T09:00:00.000Z" || !c.ClockSynced || c.BootID != "boot-1" || c.UptimeMs != 60000 || c.DeviceID != "kiosk-test-01" {
		t.Fatalf("checkin %+v", c)
	}
	if r.up.kick != 1 {
		t.Fatalf("uplink kicked %d times", r.up.kick)
	}
}

func TestDebounceIsTheSameTap(t *testing.T) {
	r := newRig(t, nil)
	a := r.tap("042F51B2712380")
	r.clk.Advance(2 * time.Second)
	b := r.tap("042F51B2712380")
	r.clk.Advance(2 * time.Second) // sliding: still within 3s of the last sighting
	c := r.tap("042F51B2712380")
	if b.ID != a.ID || c.ID != a.ID || b.Outcome != OutcomeSaved {
		t.Fatalf("debounced taps differ: %+v %+v %+v", a, b, c)
	}
	if n := r.pending(); n != 1 {
		t.Fatalf("pending %d, want 1", n)
	}
	r.clk.Advance(4 * time.Second)
	if d := r.tap("042F51B2712380"); d.Outcome != OutcomeAlreadySaved {
		t.Fatalf("after debounce: %+v", d)
	}
}

func TestConstraintPeriodDay(t *testing.T) {
	r := newRig(t, nil)
	r.tap("042F51B2712380")
	r.clk.Advance(time.Hour)
	if d := r.tap("042F51B2712380"); d.Outcome != OutcomeAlreadySaved {
		t.Fatalf("same day: %+v", d)
	}
	if d := r.tap("04A1B2C3D4E5F6"); d.Outcome != OutcomeSaved {
		t.Fatalf("other card: %+v", d)
	}
	// 23:30 UTC on the 24th is already the 25th in Brussels.
	r.clk.Set(time.Date(2026, 11, 24, 23, 30, 0, 0, time.UTC))
	if d := r.tap("042F51B2712380"); d.Outcome != OutcomeSaved {
		t.Fatalf("next Brussels day: %+v", d)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct{ chip, want string }{
		{"08A1B2C3", OutcomeUnreadable},        // random ID
		{"04A1B2C3D4", OutcomeUnreadable},      // 5 bytes
		{"04AABBCCDDEEFF", OutcomeBlocked},     // hot list
		{"04A1B2C3", OutcomeSaved},             // a 4-byte UID is fine
		{"04A1B2C3D4E5F6A7B8C9", OutcomeSaved}, // 10 bytes
	} {
		if d := r.tap(tc.chip); d.Outcome != tc.want {
			t.Errorf("%s: %s, want %s", tc.chip, d.Outcome, tc.want)
		}
	}
	if n := r.pending(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
}

func TestNoEventOutsideWindow(t *testing.T) {
	r := newRig(t, func(o *Opts, _ *queue.Opts) {
		o.Event.ValidFrom = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	})
	if d := r.tap("042F51B2712380"); d.Outcome != OutcomeNoEvent {
		t.Fatalf("before window: %+v", d)
	}
	// An unsynchronised clock cannot judge the window: queue, central decides.
	r.host.Synced = false
	r.clk.Advance(10 * time.Second)
	d := r.tap("042F51B2712380")
	if d.Outcome != OutcomeSaved {
		t.Fatalf("unsynced clock: %+v", d)
	}
	items, _ := r.ob.Pending(context.Background(), 0, 1)
	if c, _ := protocol.DecodeCheckin(items[0].Body); c.ClockSynced {
		t.Fatal("checkin claims a synced clock")
	}
	r2 := newRig(t, func(o *Opts, _ *queue.Opts) { o.Event = Event{} })
	if d := r2.tap("042F51B2712380"); d.Outcome != OutcomeNoEvent {
		t.Fatalf("no event: %+v", d)
	}
}

func TestQueueFullIsVisible(t *testing.T) {
	r := newRig(t, func(_ *Opts, q *queue.Opts) { q.MaxBytes = 1200 })
	var full bool
	for i := 0; i < 20 && !full; i++ {
		uid := []byte{0x04, 1, 2, 3, 4, 5, byte(i)}
		d := r.tap((reader.Tap{UID: uid}).Chip())
		switch d.Outcome {
		case OutcomeSaved:
		case OutcomeQueueFull:
			full = true
			if r.disp.last().Kind != display.QueueFull {
				t.Fatalf("screen %+v", r.disp.last())
			}
		default:
			t.Fatalf("tap %d: %+v", i, d)
		}
	}
	if !full {
		t.Fatal("queue never reported full")
	}
}

func TestResultShowsTotalWhileScreenUp(t *testing.T) {
	r := newRig(t, nil)
	d := r.tap("042F51B2712380")
	r.core.OnResult(protocol.Result{ID: d.ID, Status: protocol.StatusSaved, NewPoints: 1, TotalPoints: 23,
		EndUserMessage: map[string]string{"nl": "Je spaarde 1 punt. Totaal: 23."}})
	waitFor(t, func() bool { s := r.disp.last(); return s.HasTotal })
	if s := r.disp.last(); s.Total != 23 || s.Message != "Je spaarde 1 punt. Totaal: 23." {
		t.Fatalf("screen %+v", s)
	}
	// After the hold the idle screen returns, with the spaarcode.
	waitFor(t, func() bool { r.clk.Advance(time.Second); return r.disp.last().Kind == display.Idle })
	if s := r.disp.last(); s.Code != "LGIWNWB" || s.EventTitle != "Leesclub" {
		t.Fatalf("idle %+v", s)
	}
	// A late Result changes nothing on screen.
	n := len(r.disp.screens)
	r.core.OnResult(protocol.Result{ID: d.ID, Status: protocol.StatusSaved, TotalPoints: 99})
	r.core.RefreshIdle(context.Background())
	if s := r.disp.last(); s.Kind != display.Idle || len(r.disp.screens) != n+1 {
		t.Fatalf("late result drew %+v", s)
	}
}

func TestReaderFaultShowsDeskScreen(t *testing.T) {
	r := newRig(t, nil)
	r.events <- reader.Event{Health: &reader.Health{State: reader.Fault}}
	r.core.RefreshIdle(context.Background())
	if s := r.disp.last(); s.Kind != display.Fault {
		t.Fatalf("screen %+v", s)
	}
	if st := r.core.Status(); st.Reader != "fault" {
		t.Fatalf("status %+v", st)
	}
	r.events <- reader.Event{Health: &reader.Health{State: reader.OK}}
	r.core.RefreshIdle(context.Background())
	if s := r.disp.last(); s.Kind != display.Idle {
		t.Fatalf("screen after recovery %+v", s)
	}
	if r.up.status != 2 {
		t.Fatalf("status changes %d, want 2", r.up.status)
	}
}

func TestOnTickFromLoop(t *testing.T) {
	ticks := make(chan struct{}, 10)
	r := newRig(t, func(o *Opts, _ *queue.Opts) { o.OnTick = func() { ticks <- struct{}{} } })
	waitFor(t, func() bool { r.clk.Advance(time.Second); return len(ticks) > 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDisplayFaultReportedToCentral(t *testing.T) {
	r := newRig(t, nil)
	var mu sync.Mutex
	var dispErr error
	r.core.SetDisplayHealth(func() error { mu.Lock(); defer mu.Unlock(); return dispErr })
	mu.Lock()
	dispErr = errors.New("i2c: no ACK")
	mu.Unlock()
	waitFor(t, func() bool {
		r.clk.Advance(time.Second)
		r.up.mu.Lock()
		defer r.up.mu.Unlock()
		return r.up.status >= 1
	})
	if st := r.core.Status(); st.Display != "fault" {
		t.Fatalf("status %+v", st)
	}
}

// TestTicksFallOnWholeSeconds: the loop ticks on whole multiples of
// TickEvery of the clock, also after a late tick, so that the cores of a
// fleet in one process wake together; one core still ticks every second.
func TestTicksFallOnWholeSeconds(t *testing.T) {
	ticks := make(chan time.Time, 10)
	r := newRig(t, func(o *Opts, _ *queue.Opts) {
		clk := o.Clock
		o.OnTick = func() { ticks <- clk.Now() }
	})
	next := func(want time.Time) {
		t.Helper()
		select {
		case at := <-ticks:
			if !at.Equal(want) {
				t.Fatalf("tick at %s, want %s", at.Format(time.StampMilli), want.Format(time.StampMilli))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no tick at %s", want.Format(time.StampMilli))
		}
	}
	start := r.clk.Now() // 09:00:00.000
	// Once the loop answers a call, its tick is armed.
	if err := r.core.RefreshIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(1500 * time.Millisecond) // a late tick
	next(start.Add(1500 * time.Millisecond))
	r.clk.Advance(499 * time.Millisecond)
	r.clk.Advance(time.Millisecond) // the next whole second, not a second after the late tick
	next(start.Add(2 * time.Second))
	r.clk.Advance(time.Second)
	next(start.Add(3 * time.Second))
}
