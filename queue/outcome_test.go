package queue

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// Outcome counts survive a restart: saved with its checkin, refusals with
// the next checkin, or on their own within outcomeFlushEvery, or at Close.
func TestOutcomesPersistAndAreMonotonic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	ob := openTest(t, path, Opts{MinFreeBytes: -1, Clock: clk})
	ob.CountOutcome("already-saved")
	mustEnqueue(t, ob, entry("04A1B2C3D4E5F6", "D2026-12-01"))
	ob.CountOutcome("blocked")
	ob.CountOutcome("blocked")
	want := map[string]int64{"saved": 1, "already-saved": 1, "blocked": 2}
	check := func(what string, got map[string]int64) {
		t.Helper()
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
	}
	check("in memory", ob.Outcomes())
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = openTest(t, path, Opts{MinFreeBytes: -1, Clock: clk})
	check("after a reopen", ob.Outcomes())

	// A refusal alone is written within outcomeFlushEvery (no checkin
	// needed): a crash then keeps it.
	ob.CountOutcome("no-event")
	want["no-event"] = 1
	clk.Advance(outcomeFlushEvery)
	waitOutcome(t, path, "no-event", 1)
	check("after the flush", ob.Outcomes())
}

// waitOutcome waits until the table on disk says n for name.
func waitOutcome(t *testing.T, path, name string, n int64) {
	t.Helper()
	db, err := sql.Open("sqlite", roDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitfor.Cond(t, "the outcome count on disk", func() bool {
		var got int64
		db.QueryRowContext(context.Background(), "SELECT n FROM outcome WHERE name = ?", name).Scan(&got)
		return got == n
	})
}

// TestOutcomeFlushTimerOnlyWhileCountsWait: an idle outbox has no flush
// timer running (a fleet of idle kiosks would wake every
// outcomeFlushEvery for nothing); a refusal arms it, the flush writes the
// count, and the timer stays off until the next refusal.
func TestOutcomeFlushTimerOnlyWhileCountsWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	ob := openTest(t, path, Opts{MinFreeBytes: -1, Clock: clk})
	idle := clk.Timers() // the daily prune's
	if idle != 1 {
		t.Fatalf("%d timers armed by an idle outbox, want 1 (the prune's)", idle)
	}
	ob.CountOutcome("blocked")
	ob.CountOutcome("blocked")
	if n := clk.Timers(); n != idle+1 {
		t.Fatalf("%d timers armed after two refusals, want %d", n, idle+1)
	}
	clk.Advance(outcomeFlushEvery - time.Millisecond)
	ob.CountOutcome("no-event") // within the same flush
	clk.Advance(time.Millisecond)
	waitOutcome(t, path, "blocked", 2)
	waitOutcome(t, path, "no-event", 1)
	clk.Advance(outcomeFlushEvery)
	if n := clk.Timers(); n != idle {
		t.Fatalf("%d timers armed after the flush, want %d", n, idle)
	}
	ob.CountOutcome("blocked")
	if n := clk.Timers(); n != idle+1 {
		t.Fatalf("%d timers armed after the next refusal, want %d", n, idle+1)
	}
	clk.Advance(outcomeFlushEvery)
	waitOutcome(t, path, "blocked", 3)
}
