package ingest

import (
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

// TestOnTick: the batch loop calls OnTick every TickEvery while idle and
// after each batch it books (what kiosk-ingest feeds systemd's watchdog
// from), and no more once Run has returned.
func TestOnTick(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ticks := make(chan time.Time, 64)
	_, stop := runService(t, l, ServiceOpts{Broker: b.URL(), ClientID: "ingest-tick", Clock: clk,
		BatchWait: -1, TickEvery: time.Second, OnTick: func(now time.Time) {
			select {
			case ticks <- now:
			default:
				t.Error("OnTick: more ticks than the test reads")
			}
		}})
	next := func(what string) time.Time {
		t.Helper()
		select {
		case now := <-ticks:
			return now
		case <-time.After(waitfor.Timeout):
			t.Fatalf("no OnTick %s", what)
			return time.Time{}
		}
	}
	waitfor.Cond(t, "the idle tick's timer", func() bool { return clk.Timers() >= 1 })
	for i := 1; i <= 3; i++ {
		clk.Advance(time.Second)
		if now := next("while idle"); !now.Equal(clk.Now()) {
			t.Fatalf("tick %d at %s, want the clock's %s", i, now, clk.Now())
		}
	}

	// A batch: a tick after it, with the clock standing still.
	res := subscribeResults(t, b.URL())
	k := connectClient(t, b.URL(), "kiosk-tick-01")
	c := checkinFor(t, "kiosk-tick-01", 1, chipA)
	publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
	res.wait(t, c.ID)
	next("after a batch")

	stop()
	for len(ticks) > 0 {
		<-ticks
	}
	clk.Advance(10 * time.Second)
	select {
	case <-ticks:
		t.Fatal("OnTick after Run returned")
	default:
	}
}
