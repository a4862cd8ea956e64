package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
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

			// The batch waits on the other transaction's row.
			o := processBehind(t, l, app, tx, "%", "the uncommitted id", Input{Checkin: c, ReceivedAt: at})[0]
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

// processBehind books in on l (connected as application app) while tx holds
// a row the batch needs: it waits until the batch waits on a lock in a
// statement LIKE query, commits tx, and returns the batch's outcomes.
func processBehind(t *testing.T, l *Ledger, app string, tx *sql.Tx, query, what string, in ...Input) []Outcome {
	t.Helper()
	type answer struct {
		out []Outcome
		err error
	}
	done := make(chan answer, 1)
	go func() {
		out, err := l.ProcessBatch(context.Background(), in)
		done <- answer{out, err}
	}()
	waitfor.Cond(t, "the batch waiting on "+what, func() bool {
		var n int
		err := l.DB().QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
			AND wait_event_type = 'Lock' AND query LIKE $2 AND pid <> pg_backend_pid()`, app, query).Scan(&n)
		return err == nil && n > 0
	})
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.out
}

// TestHolderSetUnderTheBatch: a passholder set by hand (SetPassholder takes
// no chip lock) after the batch read it, and before the batch adds its
// points, is read again: the batch runs a second time, and both the ledger
// and the Result keep the total set by hand plus the tap's point. (Adding the
// point to the row as read would lose the change, and a Result that adds it
// to the total read before would tell the passholder a total the ledger does
// not keep.)
func TestHolderSetUnderTheBatch(t *testing.T) {
	app := fmt.Sprintf("pgbatch-holder-%d", time.Now().UnixNano())
	l := openAt(t, pgDSN(t)+"&application_name="+app, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: protocol.PeriodDay, Volume: 1}) // 22 points
	ctx := context.Background()
	at := mustTime(t, "2026-11-24T09:00:00Z")
	c := checkin(t, chipA, "evt-1", at)

	// The change by hand, not committed yet: the batch reads 22 points (the
	// row as committed) and then waits on the row to add its point.
	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`UPDATE passholders SET total_points = 40 WHERE chip_number = $1`, chipA); err != nil {
		t.Fatal(err)
	}
	out := processBehind(t, l, app, tx, "%UPDATE passholders%", "the passholder's row", Input{Checkin: c, ReceivedAt: at})
	if r := out[0].Result; r.Status != protocol.StatusSaved || r.TotalPoints != 41 {
		t.Fatalf("Result %+v, want saved with 41 points (40 set by hand, 1 for the tap)", r)
	}
	if p, err := l.Passholder(ctx, chipA); err != nil || p.TotalPoints != 41 {
		t.Fatalf("passholder %+v (%v), want 41 points", p, err)
	}
	if n := countEntries(t, l); n != 1 {
		t.Fatalf("%d ledger rows, want 1", n)
	}
}

// TestAnalyzedAsItGrows: where the server's autovacuum is off, the ledger
// analyzes its growing tables itself, so that the plans the server keeps
// for the prepared statements follow the tables: the generic plan of the id
// lookup, made while the ledger was empty, is made again once it has grown,
// and then reads the primary key, not every row.
func TestAnalyzedAsItGrows(t *testing.T) {
	ctx := context.Background()
	l := openAt(t, pgDSN(t), DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: protocol.PeriodDay, Volume: 1})
	l.an.mu.Lock()
	l.an.on, l.an.due = true, analyzeFirst // as on a server with autovacuum off
	l.an.mu.Unlock()
	// A session that keeps its plan of the lookup, as each of the ledger's
	// connections keeps its prepared statements' (generic after five runs;
	// here at once).
	conn, err := l.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"SET plan_cache_mode = force_generic_plan",
		"PREPARE lookup(text[]) AS SELECT id, device_id, result FROM checkins WHERE id = ANY($1)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// JSON: the whole plan in one row.
	plan := func() string {
		var p string
		if err := conn.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) EXECUTE lookup('{}')").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := plan(); !strings.Contains(p, `"Seq Scan"`) {
		t.Fatalf("the id lookup's generic plan on the empty ledger reads no rows one by one: the test shows nothing here\n%s", p)
	}
	at := mustTime(t, "2026-11-24T09:00:00Z")
	const n, per = 3000, 250
	for b := 0; b < n/per; b++ {
		in := make([]Input, per)
		for i := range in {
			in[i] = Input{Checkin: checkin(t, fmt.Sprintf("04%012X", b*per+i), "evt-1", at), ReceivedAt: at}
		}
		if _, err := l.ProcessBatch(ctx, in); err != nil {
			t.Fatal(err)
		}
		// Each ANALYZE done before the next batch: a batch that finds one
		// still running starts none (a loaded host's batches can outrun
		// it), and the count of runs would follow the host.
		l.an.wait()
	}
	l.an.mu.Lock()
	runs := l.an.runs
	l.an.mu.Unlock()
	var tuples float64
	if err := l.DB().QueryRow(`SELECT reltuples FROM pg_class WHERE oid = 'checkins'::regclass`).Scan(&tuples); err != nil {
		t.Fatal(err)
	}
	// Due at 50, then at 1 300 and 2 800: run after the batches that
	// reach 250, 1 500 and 3 000.
	if runs != 3 || tuples < 2500 {
		t.Fatalf("%d ANALYZEs, the planner counts %.0f checkins; want 3 and at least 2 500", runs, tuples)
	}
	// The primary key, read directly or through a bitmap (the ledger
	// analyzes some columns only, not the id's).
	if p := plan(); !strings.Contains(p, `"checkins_pkey"`) || strings.Contains(p, `"Seq Scan"`) {
		t.Fatalf("the id lookup's generic plan on %.0f checkins:\n%s", tuples, p)
	}
}

// TestAssignmentsCachedPerVersion: the set-based path keeps the assignments
// it read between batches, and follows every change of the table, by the
// ledger or by hand on another connection: a new number of points, the
// assignment deleted, a new one.
func TestAssignmentsCachedPerVersion(t *testing.T) {
	ctx := context.Background()
	l := openAt(t, pgDSN(t), DefaultOpts())
	setup(t, l)
	const dev = "kiosk-cache-01"
	at := mustTime(t, "2026-11-24T09:00:00Z")
	ev := Event{ID: "evt-c", Points: 1, Period: protocol.PeriodAbsolute, Volume: 100}
	if _, err := l.AssignEvent(ctx, dev, "", ev, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	tap := func(chip string) protocol.Result {
		t.Helper()
		c := checkin(t, chip, "evt-c", at)
		c.DeviceID = dev
		return process1(t, l, c, at).Result
	}
	for i, chip := range []string{chipA, chipB} { // read, then from the cache
		if r := tap(chip); r.Status != protocol.StatusSaved || r.NewPoints != 1 {
			t.Fatalf("tap %d: %+v, want saved with 1 point", i+1, r)
		}
	}
	l.ac.mu.Lock()
	_, cached := l.ac.m[dev+"\x00evt-c"]
	l.ac.mu.Unlock()
	if !cached {
		t.Fatal("the assignment is not cached")
	}
	if _, err := l.DB().ExecContext(ctx, `UPDATE assignments SET points = 5 WHERE device_id = $1`, dev); err != nil {
		t.Fatal(err)
	}
	if r := tap(chipA); r.Status != protocol.StatusSaved || r.NewPoints != 5 {
		t.Fatalf("after the points were set by hand: %+v, want saved with 5 points", r)
	}
	if _, err := l.DB().ExecContext(ctx, `DELETE FROM assignments WHERE device_id = $1`, dev); err != nil {
		t.Fatal(err)
	}
	if r := tap(chipA); r.Status == protocol.StatusSaved {
		t.Fatalf("after the assignment was deleted: %+v", r)
	}
	ev.Points = 2
	if _, err := l.AssignEvent(ctx, dev, "", ev, at.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := tap(chipB); r.Status != protocol.StatusSaved || r.NewPoints != 2 {
		t.Fatalf("assigned again: %+v, want saved with 2 points", r)
	}
}

// TestReplayInABatchThatReadNoIDs: after calmBatches batches that met no id
// answered before, a batch does not read its ids; a replay and a collision
// in it make it run again with them read, and they are answered as always:
// the replay with its first Result, the collision refused, the fresh
// checkin beside them booked once.
func TestReplayInABatchThatReadNoIDs(t *testing.T) {
	ctx := context.Background()
	var log strings.Builder
	o := DefaultOpts()
	o.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := openAt(t, pgDSN(t), o)
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: protocol.PeriodAbsolute, Volume: 100})
	at := mustTime(t, "2026-11-24T09:00:00Z")
	first := checkin(t, chipA, "evt-1", at)
	want := process1(t, l, first, at)
	for range calmBatches {
		process1(t, l, checkin(t, chipB, "evt-1", at), at)
	}
	if l.calm.Load() < calmBatches {
		t.Fatalf("calm %d after %d batches without a replay", l.calm.Load(), calmBatches+1)
	}
	other := first
	other.DeviceID = "kiosk-test-02"
	fresh := checkin(t, chipB, "evt-1", at)
	out, err := l.ProcessBatch(ctx, []Input{{Checkin: fresh, ReceivedAt: at}, {Checkin: first, ReceivedAt: at}, {Checkin: other, ReceivedAt: at}})
	if err != nil {
		t.Fatal(err)
	}
	if !out[1].Replay || string(out[1].Payload) != string(want.Payload) {
		t.Fatalf("the replay: %+v (%s), want its first Result %s", out[1].Result, out[1].Payload, want.Payload)
	}
	if !out[2].Collision || out[2].Result.Status != protocol.StatusInvalidRequest {
		t.Fatalf("the id of another device: %+v", out[2])
	}
	if out[0].Result.Status != protocol.StatusSaved || out[0].Replay {
		t.Fatalf("the fresh checkin: %+v", out[0])
	}
	if n := countEntries(t, l); n != calmBatches+2 {
		t.Fatalf("%d ledger rows, want %d", n, calmBatches+2)
	}
	if l.calm.Load() != 0 {
		t.Fatalf("calm %d after a replay, want 0: the next batches read their ids", l.calm.Load())
	}
	if !strings.Contains(log.String(), "did not read its ids") || strings.Contains(log.String(), "concurrent writer") {
		t.Fatalf("the batch did not run as one that read no ids, then again:\n%s", log.String())
	}
}

// TestCountsForeseen: a batch whose tap dates and assignments are known
// before anything is read (a synced clock, the assignment cached) reads its
// counts in the preload's round trip and runs no first pass after it; where
// that guess is wrong (an unsynced tap whose boot the ledger knows further,
// an assignment changed since it was cached, an event looked up) the rules'
// first pass runs on what was read, the count of the period they really
// apply is read after, and the constraint holds.
func TestCountsForeseen(t *testing.T) {
	ctx := context.Background()
	today := mustTime(t, "2026-11-24T09:00:00Z")
	yesterday := mustTime(t, "2026-11-23T20:00:00Z")
	// counted checks how many batches so far read counts late and ran the
	// first pass after their reads.
	counted := func(t *testing.T, l *Ledger, late, first int64, what string) {
		t.Helper()
		if gl, gf := l.lateCounts.Load(), l.firstPasses.Load(); gl != late || gf != first {
			t.Fatalf("%s: %d batches read their counts late and %d ran the first pass, want %d and %d", what, gl, gf, late, first)
		}
	}
	tap := func(t *testing.T, l *Ledger, c protocol.Checkin, want string, what string) {
		t.Helper()
		if r := process1(t, l, c, today).Result; r.Status != want {
			t.Fatalf("%s: %+v, want %s", what, r, want)
		}
	}

	l := openAt(t, pgDSN(t), DefaultOpts())
	setup(t, l, Event{ID: "evt-d", Points: 1, Period: protocol.PeriodDay, Volume: 1})
	tap(t, l, checkin(t, chipA, "evt-d", today), protocol.StatusSaved, "first tap")
	counted(t, l, 1, 1, "the assignment not cached yet")
	tap(t, l, checkin(t, chipA, "evt-d", today.Add(time.Minute)), protocol.StatusMaximumReached, "second tap today")
	counted(t, l, 1, 1, "the assignment cached, the clock synced")

	// chipB saved yesterday evening; the ledger knows boot-u 20 h up at
	// today's 09:00. An unsynced tap of that boot at 8 h uptime was made at
	// 21:00 yesterday: the batch alone would date it today.
	tap(t, l, checkin(t, chipB, "evt-d", yesterday), protocol.StatusSaved, "yesterday's tap")
	counted(t, l, 1, 1, "yesterday's tap")
	ahead := checkin(t, chipA, "evt-other", today)
	ahead.ClockSynced, ahead.BootID, ahead.UptimeMs = false, "boot-u", (20 * time.Hour).Milliseconds()
	tap(t, l, ahead, protocol.StatusEventNotFound, "a tap at an event not assigned")
	counted(t, l, 1, 2, "an assignment not cached")
	older := checkin(t, chipB, "evt-d", today)
	older.ClockSynced, older.BootID, older.UptimeMs = false, "boot-u", (8 * time.Hour).Milliseconds()
	tap(t, l, older, protocol.StatusMaximumReached, "an unsynced tap dated yesterday by its boot")
	counted(t, l, 2, 3, "a boot the ledger knows further")

	// The assignment's period set by hand to a year: yesterday's tap
	// counts for today's.
	if _, err := l.DB().ExecContext(ctx, `UPDATE assignments SET period = 'YEAR' WHERE event_id = 'evt-d'`); err != nil {
		t.Fatal(err)
	}
	tap(t, l, checkin(t, chipB, "evt-d", today), protocol.StatusMaximumReached, "a tap today, the period a year")
	counted(t, l, 3, 4, "the assignment changed since it was cached")

	t.Run("event looked up", func(t *testing.T) {
		o := DefaultOpts()
		o.EnrollUnknown = true // the default event: a point a day
		l := openAt(t, pgDSN(t), o)
		setup(t, l)
		tap(t, l, checkin(t, chipA, "evt-free", today), protocol.StatusSaved, "the event's first tap")
		counted(t, l, 1, 1, "the event's first tap")
		tap(t, l, checkin(t, chipA, "evt-free", today.Add(time.Minute)), protocol.StatusMaximumReached, "a second tap today")
		counted(t, l, 2, 2, "an event looked up")
	})
}

// TestWritesInParts: a batch of more than writePart checkins sends its
// ledger rows in parts while its rules still run (pgwrite.go). The rows are
// booked once each, in batch order, with every card's point; a replay in a
// later part of a batch that did not read its ids fails that part's insert
// after the first part went out, and the batch runs again and answers it
// as a replay; a batch that fails in its own rules after the first part
// went out books nothing, and the connection serves the next batch.
func TestWritesInParts(t *testing.T) {
	ctx := context.Background()
	at := time.Now()
	n := 2*writePart + 7
	late := writePart + 60 // in the second part

	t.Run("replay in a later part", func(t *testing.T) {
		l := openAt(t, pgDSN(t), DefaultOpts())
		l.calmAfter = 0 // ids never read first
		seedBench(t, l, n, at)
		if _, err := l.DB().ExecContext(ctx, `UPDATE assignments SET volume = 5`); err != nil {
			t.Fatal(err)
		}
		in := benchRows(t, n, at)
		// One card tapped in the first part and in the last: its points go
		// out once, with the last, and the first part's total is not final.
		again, other := n-3, in[n-3].Checkin.ChipNumber
		in[again].Checkin.ChipNumber = in[3].Checkin.ChipNumber
		first, err := l.ProcessBatch(ctx, in[late:late+1])
		if err != nil {
			t.Fatal(err)
		}
		batch := append(append([]Input{}, in...), in[5]) // and an id repeated in the batch
		out, err := l.ProcessBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			switch {
			case i == late:
				if !o.Replay || !bytes.Equal(o.Payload, first[0].Payload) {
					t.Fatalf("checkin %d, booked before: %+v, want its first Result", i, o)
				}
			case i == n:
				if !o.Replay || !bytes.Equal(o.Payload, out[5].Payload) {
					t.Fatalf("the id repeated: %+v", o)
				}
			case i == again:
				if o.Result.Status != protocol.StatusSaved || o.Result.TotalPoints != 2 {
					t.Fatalf("the card's second tap: %+v", o.Result)
				}
			case o.Replay || o.Result.Status != protocol.StatusSaved || o.Result.TotalPoints != 1:
				t.Fatalf("checkin %d: %+v", i, o.Result)
			}
		}
		var ids []string
		if err := l.Entries(ctx, func(e Entry) error { ids = append(ids, e.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []string{in[late].Checkin.ID}
		for i, x := range in {
			if i != late {
				want = append(want, x.Checkin.ID)
			}
		}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("%d ledger rows, want %d in batch order", len(ids), len(want))
		}
		for _, i := range []int{0, writePart - 1, writePart, late, n - 1} {
			if p, err := l.Passholder(ctx, in[i].Checkin.ChipNumber); err != nil || p.TotalPoints != 1 {
				t.Fatalf("card of checkin %d: %+v %v", i, p, err)
			}
		}
		if p, err := l.Passholder(ctx, in[3].Checkin.ChipNumber); err != nil || p.TotalPoints != 2 {
			t.Fatalf("the card tapped twice: %+v %v", p, err)
		}
		if p, err := l.Passholder(ctx, other); err != nil || p.TotalPoints != 0 {
			t.Fatalf("a card not tapped: %+v %v", p, err)
		}
	})

	t.Run("rules fail after a part went out", func(t *testing.T) {
		o := DefaultOpts()
		o.Logger = slog.New(slog.DiscardHandler)
		l := openAt(t, pgDSN(t), o)
		l.DB().SetMaxOpenConns(1) // the next batch is on the same connection
		seedBench(t, l, n, at)
		in := benchRows(t, n, at)
		// A stored Result that does not decode: its replay fails the rules.
		if _, err := l.DB().ExecContext(ctx, `INSERT INTO checkins (id, device_id, seq, chip_number, event_id, status, points,
			tapped_at, clock_synced, dated_ms, received_at, result) VALUES ($1, $2, 1, $3, 'evt-1', 'saved', 1, $4, true, $5, $4, 'not json')`,
			in[late].Checkin.ID, in[late].Checkin.DeviceID, in[late].Checkin.ChipNumber, in[late].Checkin.TappedAt, at.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		pid := func() (p int) {
			if err := l.DB().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&p); err != nil {
				t.Fatal(err)
			}
			return p
		}
		before := pid()
		if _, err := l.ProcessBatch(ctx, in); err == nil || !strings.Contains(err.Error(), "stored result") {
			t.Fatalf("err %v, want the stored result's", err)
		}
		if after := pid(); after != before {
			t.Fatalf("the connection was dropped (server process %d, then %d): the pipeline was not ended", before, after)
		}
		if k := countEntries(t, l); k != 1 {
			t.Fatalf("%d ledger rows, want the one stored before", k)
		}
		if p, err := l.Passholder(ctx, in[0].Checkin.ChipNumber); err != nil || p.TotalPoints != 0 {
			t.Fatalf("card of checkin 0: %+v %v", p, err)
		}
		out, err := l.ProcessBatch(ctx, in[:late])
		if err != nil {
			t.Fatal(err)
		}
		if r := out[writePart+1].Result; r.Status != protocol.StatusSaved || r.TotalPoints != 1 {
			t.Fatalf("the next batch: %+v", r)
		}
		if k := countEntries(t, l); k != late+1 {
			t.Fatalf("%d ledger rows, want %d", k, late+1)
		}
	})
}

// TestWriteStatementGone: a write statement deallocated on the connection
// behind pgx's back (as a pooler or a DISCARD would) fails the batch's
// insert; the connection is closed, and the batch runs again on another and
// is booked once.
func TestWriteStatementGone(t *testing.T) {
	ctx := context.Background()
	at := time.Now()
	l := openAt(t, pgDSN(t), DefaultOpts())
	l.DB().SetMaxOpenConns(1)
	seedBench(t, l, 20, at)
	in := benchRows(t, 20, at)
	if _, err := l.ProcessBatch(ctx, in[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, "DEALLOCATE "+pgWrites[wInsCheckins].name); err != nil {
		t.Fatal(err)
	}
	out, err := l.ProcessBatch(ctx, in[10:])
	if err != nil {
		t.Fatal(err)
	}
	if r := out[9].Result; r.Status != protocol.StatusSaved || out[9].Replay {
		t.Fatalf("after the statement was gone: %+v", out[9])
	}
	if n := countEntries(t, l); n != 20 {
		t.Fatalf("%d ledger rows, want 20", n)
	}
}
