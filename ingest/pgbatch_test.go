package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

// TestSetBasedIDRace: on the set-based path the batch reads its ids before
// it inserts them; a concurrent transaction that holds one of them with
// another chip (so under another lock) makes the insert wait, then fail,
// and the batch runs again and answers as the per-checkin path would: the
// other transaction's stored bytes for the same device (a replay), an
// invalid-request collision for another device; nothing booked twice.
func TestSetBasedIDRace(t *testing.T) {
	for _, tc := range []struct {
		name, holder string
		collision    bool
	}{{"same device", "kiosk-test-01", false}, {"another device", "kiosk-other-01", true}} {
		t.Run(tc.name, func(t *testing.T) {
			app := fmt.Sprintf("pgbatch-race-%d", time.Now().UnixNano())
			l := openAt(t, pgDSN(t)+"&application_name="+app, DefaultOpts())
			setup(t, l, Event{ID: "evt-1", Points: 1, Period: protocol.PeriodDay, Volume: 1})
			ctx := context.Background()
			at := mustTime(t, "2026-11-24T09:00:00Z")
			c := checkin(t, chipA, "evt-1", at)

			// The other transaction: the id, with chip B, not committed yet.
			stored := protocol.Result{V: protocol.Version, ID: c.ID, Status: protocol.StatusSaved, NewPoints: 1,
				TotalPoints: 23, EndUserMessage: savedMessage(1, 23)}.Encode()
			tx, err := l.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.Exec(`INSERT INTO checkins (id, device_id, seq, chip_number, event_id, status, points,
				tapped_at, clock_synced, dated_ms, received_at, result) VALUES ($1, $2, 1, $3, 'evt-1', 'saved', 1, $4, true, $5, $4, $6)`,
				c.ID, tc.holder, chipB, protocol.FormatTime(at), at.UnixMilli(), stored); err != nil {
				t.Fatal(err)
			}

			type answer struct {
				out []Outcome
				err error
			}
			done := make(chan answer, 1)
			go func() {
				out, err := l.ProcessBatch(ctx, []Input{{Checkin: c, ReceivedAt: at}})
				done <- answer{out, err}
			}()
			// The batch waits on the other transaction's row.
			waitfor.Cond(t, "the batch waiting on the uncommitted id", func() bool {
				var n int
				err := l.DB().QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
					AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`, app).Scan(&n)
				return err == nil && n > 0
			})
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			a := <-done
			if a.err != nil {
				t.Fatal(a.err)
			}
			o := a.out[0]
			switch {
			case tc.collision && (!o.Collision || o.Result.Status != protocol.StatusInvalidRequest):
				t.Fatalf("want a collision: %+v", o)
			case !tc.collision && (!o.Replay || !bytes.Equal(o.Payload, stored)):
				t.Fatalf("want the stored bytes as a replay: %+v\n%s", o, o.Payload)
			}
			if n := countEntries(t, l); n != 1 {
				t.Fatalf("%d ledger rows, want 1", n)
			}
			if p, err := l.Passholder(ctx, chipA); err != nil || p.TotalPoints != 22 {
				t.Fatalf("chip A %+v %v: its points changed", p, err)
			}
		})
	}
}

// TestPlannedPerExecution: the ledger's PostgreSQL connections plan every
// statement for its parameters. After a few batches on a new (empty)
// ledger, a generic plan frozen then would scan the checkins sequentially
// for good where autovacuum never analyzes (280 to 440 ms a batch at 45 000
// rows, measured); none of the prepared statements may have one. A URL that
// sets plan_cache_mode keeps its own.
func TestPlannedPerExecution(t *testing.T) {
	ctx := context.Background()
	l := openAt(t, pgDSN(t), DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: protocol.PeriodDay, Volume: 1})
	at := mustTime(t, "2026-11-24T09:00:00Z")
	for i := range 12 { // more than the server's five custom plans before it tries a generic one
		c := checkin(t, fmt.Sprintf("04%012X", i), "evt-1", at)
		if _, err := l.ProcessBatch(ctx, []Input{{Checkin: c, ReceivedAt: at}}); err != nil {
			t.Fatal(err)
		}
	}
	// Every connection of the pool at once: the batches' is among them.
	var custom, generic int64
	var conns []*sql.Conn
	for range 4 {
		c, err := l.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		if err := c.QueryRowContext(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "force_custom_plan" {
			t.Errorf("plan_cache_mode %q, want force_custom_plan", mode)
		}
		var cp, gp int64
		if err := c.QueryRowContext(ctx, "SELECT coalesce(sum(custom_plans), 0), coalesce(sum(generic_plans), 0) FROM pg_prepared_statements WHERE cardinality(parameter_types) > 0").
			Scan(&cp, &gp); err != nil {
			t.Fatal(err)
		}
		custom, generic = custom+cp, generic+gp
	}
	for _, c := range conns {
		c.Close()
	}
	if custom < 12 || generic != 0 {
		t.Fatalf("prepared statements planned %d times for their parameters and %d times generically; want ≥ 12 and 0", custom, generic)
	}

	own := openAt(t, pgDSN(t)+"&plan_cache_mode=auto", DefaultOpts())
	var mode string
	if err := own.DB().QueryRowContext(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil || mode != "auto" {
		t.Fatalf("plan_cache_mode %q (%v): the URL's own setting was not kept", mode, err)
	}
}
