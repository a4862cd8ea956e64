package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

func offer(f *Feeder, m Message) { f.Status(m.Status, m.Raw, m.ReceivedAt, m.Retained) }

// TestFeederCoalesces: a burst of Status changes of one state is written as
// its newest, while every online/offline transition is kept, in order; an
// older Status offered after a newer one does not replace it; checkins keep
// each device's latest time.
func TestFeederCoalesces(t *testing.T) {
	r, _ := openRegistry(t, backends[0].dsn(t))
	f := r.NewFeeder(FeederOpts{})
	const id = "kiosk-feed-01"
	for i := range 10 {
		offer(f, status(id, true, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i)*time.Second), func(s *protocol.Status) { s.Pending = i }))
	}
	offer(f, status(id, true, t0, t0.Add(11*time.Second), func(s *protocol.Status) { s.Pending = 99 })) // older: kept out
	offer(f, will(id, t0.Add(20*time.Second)))
	offer(f, status(id, true, t0.Add(30*time.Second), t0.Add(30*time.Second), func(s *protocol.Status) { s.Pending = 5 }))
	f.Checkin(id, t0.Add(31*time.Second))
	f.Checkin(id, t0.Add(25*time.Second))
	if !f.Flush(context.Background()) {
		t.Fatal("flush failed")
	}
	c := f.Counters()
	if c.Offered != 13 || c.Coalesced != 9 || c.Stale != 1 || c.Transitions != 3 || c.Applied != 3 || c.Flushes != 1 || c.Checkins != 2 {
		t.Fatalf("counters %+v", c)
	}
	ts := transitions(t, r, id)
	if len(ts) != 3 || !ts[0].Online || ts[1].Online || !ts[2].Online {
		t.Fatalf("transitions %+v", ts)
	}
	d := device(t, r, id)
	if d.Status.Pending != 5 || !d.LastCheckin.Equal(t0.Add(31*time.Second)) {
		t.Fatalf("%+v", d)
	}
	// Nothing queued: a flush writes nothing.
	if !f.Flush(context.Background()) || f.Counters().Flushes != 1 {
		t.Fatal("an empty flush wrote")
	}
}

// TestFeederRun: Run writes what is offered without being asked, and what
// is left when it stops.
func TestFeederRun(t *testing.T) {
	r, _ := openRegistry(t, backends[0].dsn(t))
	f := r.NewFeeder(FeederOpts{FlushEvery: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	offer(f, status("kiosk-feed-02", true, t0, t0, nil))
	waitfor.Cond(t, "status written", func() bool {
		_, err := r.Device(context.Background(), "kiosk-feed-02")
		return err == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	offer(f, status("kiosk-feed-03", true, t0, t0, nil)) // after Run: stays queued
	if _, err := r.Device(context.Background(), "kiosk-feed-03"); err == nil {
		t.Fatal("written without Run")
	}
}

// TestFeederKeepsWhatFailed: a failed write keeps its messages queued, in
// front of what came meanwhile.
func TestFeederKeepsWhatFailed(t *testing.T) {
	r, _ := openRegistry(t, backends[0].dsn(t))
	f := r.NewFeeder(FeederOpts{})
	offer(f, status("kiosk-feed-04", true, t0, t0, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f.Flush(ctx) {
		t.Fatal("a flush with a cancelled context succeeded")
	}
	offer(f, will("kiosk-feed-04", t0.Add(time.Minute)))
	if !f.Flush(context.Background()) {
		t.Fatal("flush failed")
	}
	if ts := transitions(t, r, "kiosk-feed-04"); len(ts) != 2 || !ts[0].Online || ts[1].Online {
		t.Fatalf("transitions %+v", ts)
	}
	if c := f.Counters(); c.DBErrors != 1 {
		t.Fatalf("%+v", c)
	}
}

// TestFeederBounded: a device flapping faster than the writer keeps at most
// MaxPerDevice messages.
func TestFeederBounded(t *testing.T) {
	r, _ := openRegistry(t, backends[0].dsn(t))
	f := r.NewFeeder(FeederOpts{MaxPerDevice: 4})
	for i := range 10 {
		if i%2 == 0 {
			offer(f, status("kiosk-feed-05", true, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i)*time.Second), nil))
		} else {
			offer(f, will("kiosk-feed-05", t0.Add(time.Duration(i)*time.Second)))
		}
	}
	f.Flush(context.Background())
	if c := f.Counters(); c.Overflow != 6 || c.Transitions != 4 {
		t.Fatalf("%+v", c)
	}
}
