package queue

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
)

// TestPendingFromFreshMatchesTheDatabase: Pending served from the checkins
// just enqueued (no query) answers exactly what the database answers, for
// the forwarder's reads (each beyond the last) and for any other, through
// enqueues, deletes of every kind, more taps than fresh holds and a reopen.
func TestPendingFromFreshMatchesTheDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	clk := clock.NewFake(t0)
	ob := openTest(t, path, Opts{MinFreeBytes: -1, Clock: clk})
	db, err := sql.Open("sqlite", roDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	want := func(after int64, limit int) []Item {
		t.Helper()
		rows, err := db.QueryContext(ctx, "SELECT seq, id, body, queued_at FROM checkin WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var items []Item
		for rows.Next() {
			var it Item
			var ms int64
			if err := rows.Scan(&it.Seq, &it.ID, &it.Body, &ms); err != nil {
				t.Fatal(err)
			}
			it.QueuedAt = time.UnixMilli(ms)
			items = append(items, it)
		}
		return items
	}
	calls := 0
	check := func(what string, after int64, limit int) []Item {
		t.Helper()
		calls++
		w := want(after, limit) // before Pending, which may forget what it returns
		got, err := ob.Pending(ctx, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: Pending(%d, %d) = %v, the database has %v", what, after, limit, got, w)
		}
		return got
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var cursor, last int64
	var sent []string // ids read, some answered below
	hits := 0         // reads served from fresh
	enqueue := func(n int) {
		for range n {
			clk.Advance(time.Duration(rng.IntN(3)) * time.Millisecond) // some in the same millisecond
			bucket := ""
			if rng.IntN(2) == 0 {
				bucket = "D2026-11-24"
			}
			last = mustEnqueue(t, ob, entry(fmt.Sprintf("04%012X", rng.IntN(1<<40)), bucket)).Seq
		}
	}
	for step := range 3000 {
		switch r := rng.IntN(100); {
		case r < 30:
			enqueue(1 + rng.IntN(3))
		case r < 31:
			enqueue(freshMax + rng.IntN(10)) // offline: more than fresh holds
		case r < 65: // the forwarder: beyond the last read
			for _, it := range check("forwarder", cursor, 1+rng.IntN(40)) {
				cursor = max(cursor, it.Seq)
				sent = append(sent, it.ID)
			}
		case r < 72: // any other read
			limits := []int{-1, 0, 1, 2, 5, 100}
			check("other", rng.Int64N(last+3), limits[rng.IntN(len(limits))])
		case r < 97: // Results: some of what was read, a repeat, an unknown id
			var acks []Ack
			keep := sent[:0]
			for _, id := range sent {
				if rng.IntN(3) > 0 {
					acks = append(acks, Ack{ID: id, KeepHistory: rng.IntN(2) == 0})
				} else {
					keep = append(keep, id)
				}
			}
			sent = keep
			if rng.IntN(3) == 0 { // Results for checkins not read in this session (sent before a restart)
				rows, err := db.QueryContext(ctx, "SELECT id FROM checkin ORDER BY seq DESC LIMIT 3")
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var id string
					rows.Scan(&id)
					acks = append(acks, Ack{ID: id, KeepHistory: true})
				}
				rows.Close()
			}
			if len(acks) > 0 && rng.IntN(4) == 0 {
				acks = append(acks, acks[0], Ack{ID: "0193a1f4-7c1e-7d2a-9b1f-000000000000"})
			}
			if _, err := ob.DoneBatch(ctx, acks); err != nil {
				t.Fatal(err)
			}
		case r < 98: // a reconnect: the forwarder reads from the start again
			cursor = 0
		default:
			if step%5 == 0 { // a restart
				hits += freshHits(ob)
				if err := ob.Close(); err != nil {
					t.Fatal(err)
				}
				ob = openTest(t, path, Opts{MinFreeBytes: -1, Clock: clk})
				cursor = 0
			}
		}
	}
	hits += freshHits(ob)
	t.Logf("%d reads, %d of them without a query", calls, hits)
	if hits < calls/4 {
		t.Fatalf("only %d of %d reads were served from fresh", hits, calls)
	}
}

func freshHits(ob *Outbox) int {
	ob.freshMu.Lock()
	defer ob.freshMu.Unlock()
	return ob.freshHits
}
