package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// eachBackendDSN runs fn per backend with one fresh ledger location, for
// tests that open several Ledgers on one database.
func eachBackendDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.dsn(t)) })
	}
}

// TestConcurrentInstances is several ingest instances on one database, as a
// shared subscription makes them: every checkin reaches two or three of them
// (a republish landing elsewhere), in overlapping batches of random size and
// order, all at once. Each id must be booked once and answered identically
// everywhere, and each (chip, event) booked exactly as often as its volume
// allows, with passholder totals that add up.
func TestConcurrentInstances(t *testing.T) { eachBackendDSN(t, testConcurrentInstances) }

// TestConcurrentInstancesReadingNoIDs is TestConcurrentInstances with
// PostgreSQL batches that never read their ids first (calmBatches): every
// replay and collision is found by the insert, and the batch run again.
func TestConcurrentInstancesReadingNoIDs(t *testing.T) {
	testConcurrentInstancesWith(t, pgDSN(t), true)
}

func testConcurrentInstances(t *testing.T, dsn string) { testConcurrentInstancesWith(t, dsn, false) }

func testConcurrentInstancesWith(t *testing.T, dsn string, unread bool) {
	const instances, checkins = 4, 300
	rng := rand.New(rand.NewPCG(1, 2))
	o := DefaultOpts()
	o.EnrollUnknown = true // unknown chips and an unknown event are created on the fly, concurrently
	o.Logger = testLogger(t)
	o.Synchronous = "NORMAL" // the locks are the same; the test is quicker

	// The instances start at once on an empty database: the migrations
	// must not trip over each other.
	ls := make([]*Ledger, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range ls {
		wg.Go(func() { ls[i], errs[i] = Open(dsn, o) })
	}
	wg.Wait()
	for i, l := range ls {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { l.Close() })
		if unread {
			l.calmAfter = 0
		}
	}
	ctx := context.Background()
	events := map[string]Event{
		"evt-1": {ID: "evt-1", Points: 1, Period: "DAY", Volume: 1},
		"evt-2": {ID: "evt-2", Points: 3, Period: "DAY", Volume: 2},
	}
	for _, e := range events {
		if err := ls[0].UpsertEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	events["evt-new"] = Event{ID: "evt-new", Points: 1, Period: "DAY", Volume: 1} // o.Default
	known := []string{"04000000000001", "04000000000002", "04000000000003", "04000000000004", "04000000000005", "04000000000006"}
	chips := append(known, "04000000000F01", "04000000000F02") // the last two enrolled on the fly
	initial := map[string]int{}
	for _, c := range known {
		initial[c] = 10
		if err := ls[1].SetPassholder(ctx, Passholder{ChipNumber: c, TotalPoints: 10}); err != nil {
			t.Fatal(err)
		}
	}

	day := mustTime(t, "2026-11-24T09:00:00Z")
	rcv := day.Add(time.Hour)
	eventIDs := []string{"evt-1", "evt-2", "evt-new"}
	all := make([]Input, checkins)
	for i := range all {
		device := fmt.Sprintf("kiosk-c-%02d", i%5)
		c := protocol.Checkin{V: 1, ID: newID(t), DeviceID: device, Seq: int64(i/5 + 1),
			ChipNumber: chips[rng.IntN(len(chips))], EventID: eventIDs[rng.IntN(len(eventIDs))],
			CounterID: "balie", TappedAt: protocol.FormatTime(day.Add(time.Duration(i) * time.Second)),
			ClockSynced: true, BootID: "boot-" + device, UptimeMs: int64(1000 * (i + 1))}
		if i%7 == 0 { // an unsynced kiosk clock: dated from its boot (the boots rows are shared too)
			c.ClockSynced, c.TappedAt = false, "1970-01-01T00:00:10.000Z"
		}
		all[i] = Input{Checkin: c, ReceivedAt: rcv}
	}
	// Each checkin goes to two or three instances; each instance gets its
	// share shuffled and cut into batches of 1 to 24.
	work := make([][]Input, instances)
	for _, x := range all {
		perm := rng.Perm(instances)
		for _, i := range perm[:2+rng.IntN(2)] {
			work[i] = append(work[i], x)
		}
	}
	var mu sync.Mutex
	answers := map[string][][]byte{}
	start := make(chan struct{})
	for i, l := range ls {
		in := work[i]
		rng.Shuffle(len(in), func(a, b int) { in[a], in[b] = in[b], in[a] })
		var batches [][]Input
		for len(in) > 0 {
			n := min(len(in), 1+rng.IntN(24))
			batches, in = append(batches, in[:n]), in[n:]
		}
		wg.Go(func() {
			<-start
			for _, b := range batches {
				out, err := l.ProcessBatch(ctx, b)
				if err != nil {
					t.Errorf("instance %d: %v", i, err)
					return
				}
				mu.Lock()
				for j, o := range out {
					answers[b[j].Checkin.ID] = append(answers[b[j].Checkin.ID], o.Payload)
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every id answered identically wherever it went.
	for _, x := range all {
		got := answers[x.Checkin.ID]
		if len(got) < 2 {
			t.Fatalf("%s answered %d times", x.Checkin.ID, len(got))
		}
		for _, p := range got[1:] {
			if !bytes.Equal(p, got[0]) {
				t.Fatalf("%s answered differently:\n%s\n%s", x.Checkin.ID, got[0], p)
			}
		}
	}
	// Booked once each, and exactly as often as the volume allows.
	rows := map[string]Entry{}
	if err := ls[2].Entries(ctx, func(e Entry) error {
		if _, dup := rows[e.ID]; dup {
			t.Errorf("%s booked twice", e.ID)
		}
		rows[e.ID] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != checkins {
		t.Fatalf("%d rows, want %d", len(rows), checkins)
	}
	type pair struct{ chip, event string }
	taps, saved := map[pair]int{}, map[pair]int{}
	points := map[string]int{}
	totals := map[string]map[int]bool{}
	for _, x := range all {
		c := x.Checkin
		k := pair{c.ChipNumber, c.EventID}
		taps[k]++
		r, err := protocol.DecodeResult(answers[c.ID][0])
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != rows[c.ID].Status {
			t.Fatalf("%s: answered %s, booked %s", c.ID, r.Status, rows[c.ID].Status)
		}
		switch r.Status {
		case protocol.StatusSaved:
			saved[k]++
			points[c.ChipNumber] += r.NewPoints
			if r.NewPoints != events[c.EventID].Points {
				t.Errorf("%s: %d points for %s", c.ID, r.NewPoints, c.EventID)
			}
			if totals[c.ChipNumber] == nil {
				totals[c.ChipNumber] = map[int]bool{}
			}
			if totals[c.ChipNumber][r.TotalPoints] {
				t.Errorf("chip %s: two bookings answered total %d", c.ChipNumber, r.TotalPoints)
			}
			totals[c.ChipNumber][r.TotalPoints] = true
		case protocol.StatusMaximumReached:
		default:
			t.Errorf("%s: %s", c.ID, answers[c.ID][0])
		}
	}
	for k, n := range taps {
		if want := min(n, events[k.event].Volume); saved[k] != want {
			t.Errorf("%s %s: %d taps, %d saved, want %d", k.chip, k.event, n, saved[k], want)
		}
	}
	for _, chip := range chips {
		p, err := ls[3].Passholder(ctx, chip)
		if err != nil {
			t.Fatal(err)
		}
		if want := initial[chip] + points[chip]; p.TotalPoints != want || !totals[chip][want] {
			t.Errorf("chip %s: total %d, want %d (the last booking's answer)", chip, p.TotalPoints, want)
		}
	}
	if e, err := ls[0].Event(ctx, "evt-new"); err != nil || e.Period != "DAY" {
		t.Errorf("auto-created event: %+v, %v", e, err)
	}
}

// TestConcurrentSameID sends one checkin to two instances at the same
// instant, many times over: one booking, one answer.
func TestConcurrentSameID(t *testing.T) { eachBackendDSN(t, testConcurrentSameID) }

// TestConcurrentSameIDReadingNoIDs is TestConcurrentSameID with PostgreSQL
// batches that never read their ids first.
func TestConcurrentSameIDReadingNoIDs(t *testing.T) { testConcurrentSameIDWith(t, pgDSN(t), true) }

func testConcurrentSameID(t *testing.T, dsn string) { testConcurrentSameIDWith(t, dsn, false) }

func testConcurrentSameIDWith(t *testing.T, dsn string, unread bool) {
	o := DefaultOpts()
	o.Synchronous = "NORMAL"
	a, b := openAt(t, dsn, o), openAt(t, dsn, o)
	if unread {
		a.calmAfter, b.calmAfter = 0, 0
	}
	setup(t, a, Event{ID: "evt-1", Points: 1, Period: "ABSOLUTE", Volume: 1})
	ctx := context.Background()
	at := mustTime(t, "2026-11-24T09:00:00Z")
	saved := 0
	for i := 0; i < 30; i++ {
		// Same chip each round, so only the first round may save.
		c := checkin(t, chipA, "evt-1", at)
		var outs [2][]Outcome
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j, l := range []*Ledger{a, b} {
			wg.Go(func() { <-start; outs[j], errs[j] = l.ProcessBatch(ctx, []Input{{c, at}}) })
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		x, y := outs[0][0], outs[1][0]
		if !bytes.Equal(x.Payload, y.Payload) || x.Replay == y.Replay {
			t.Fatalf("round %d:\n%s (replay %v)\n%s (replay %v)", i, x.Payload, x.Replay, y.Payload, y.Replay)
		}
		if x.Result.Status == protocol.StatusSaved {
			saved++
		}
	}
	if saved != 1 {
		t.Errorf("saved %d times, want 1", saved)
	}
	if n := countEntries(t, a); n != 30 {
		t.Errorf("%d rows", n)
	}
	if p, _ := b.Passholder(ctx, chipA); p.TotalPoints != 23 {
		t.Errorf("total %d", p.TotalPoints)
	}
}

// TestDialectsAgree books one script of checkins (fixed ids and times, every
// outcome, replays, odd bytes) in every backend: the answers are the same
// bytes, and so is the export.
func TestDialectsAgree(t *testing.T) {
	script := func(t *testing.T) []Input {
		at := mustTime(t, "2026-11-24T09:00:00Z")
		id := func(n int) string { return fmt.Sprintf("0193a1f4-7c1e-7d2a-9b1f-%012x", n) }
		var in []Input
		add := func(chip, event string, tapped time.Time, f func(*protocol.Checkin)) {
			n := len(in) + 1
			c := protocol.Checkin{V: 1, ID: id(n), DeviceID: "kiosk-agree-01", Seq: int64(n), ChipNumber: chip,
				EventID: event, CounterID: "balie", TappedAt: protocol.FormatTime(tapped), ClockSynced: true,
				BootID: "boot-1", UptimeMs: int64(n * 1000)}
			if f != nil {
				f(&c)
			}
			in = append(in, Input{Checkin: c, ReceivedAt: at.Add(time.Duration(n) * time.Second)})
		}
		add(chipA, "evt-1", at, nil)
		add(chipA, "evt-1", at.Add(time.Minute), nil)                  // maximum-reached
		add(chipA, "evt-w", at, nil)                                   // volume 2 per week
		add(chipA, "evt-w", at.Add(24*time.Hour), nil)                 // dated at receipt (future)
		add(chipA, "evt-w", at.Add(-48*time.Hour), nil)                // the week before: saved
		add(chipB, "evt-1", at, nil)                                   // blocked
		add("04AABBCCDDEE01", "evt-1", at, nil)                        // enrolled
		add(chipA, "evt-none", at, nil)                                // created from the default
		add(chipA, "evt-late", at, nil)                                // outside its window
		add("08123456", "evt-1", at, nil)                              // random UID
		add(chipA, "evt-\x00nul", at, nil)                             // NUL in the event id
		add("04AABBCCDDEE02", "evt-\xff", at, nil)                     // not UTF-8
		add("04AABBCCDDEE03", "evt-1", at, func(c *protocol.Checkin) { // unsynced, odd text
			c.ClockSynced, c.BootID, c.CounterID, c.TappedAt = false, "boot-\x00", "b\xffalie", "1970-01-01T00:00:00\x00Z"
		})
		add("04AABBCCDDEE04", "evt-1", at, func(c *protocol.Checkin) { c.ClockSynced, c.UptimeMs = false, 500 })
		in = append(in, in[0], in[3]) // replays
		collide := in[1]
		collide.Checkin.DeviceID = "kiosk-agree-02"
		return append(in, collide)
	}
	type run struct {
		payloads [][]byte
		export   []byte
	}
	var runs []run
	var names []string
	eachBackend(t, func(t *testing.T, open opener) {
		o := DefaultOpts()
		o.EnrollUnknown = true
		o.Default = Event{Period: "WEEK", Volume: 1, Points: 2}
		l := open(t, o)
		ctx := context.Background()
		for _, e := range []Event{
			{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1},
			{ID: "evt-w", Points: 5, Period: "WEEK", Volume: 2},
			{ID: "evt-late", Points: 1, Period: "DAY", Volume: 1, ValidUntil: mustTime(t, "2026-11-24T08:00:00Z")},
		} {
			if err := l.UpsertEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.SetPassholder(ctx, Passholder{ChipNumber: chipA, TotalPoints: 7}); err != nil {
			t.Fatal(err)
		}
		if err := l.SetBlocked(ctx, chipB, true); err != nil {
			t.Fatal(err)
		}
		in := script(t)
		var r run
		// In two batches, the second holding the replays.
		for _, part := range [][]Input{in[:10], in[10:]} {
			out, err := l.ProcessBatch(ctx, part)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out {
				r.payloads = append(r.payloads, o.Payload)
			}
		}
		var buf bytes.Buffer
		if err := l.WriteJSONLines(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		r.export = buf.Bytes()
		runs = append(runs, r)
		names = append(names, l.Dialect())
	})
	if len(runs) < 2 {
		t.Skip("one backend only")
	}
	for i := range runs[0].payloads {
		t.Logf("%2d %s", i, runs[0].payloads[i])
		if !bytes.Equal(runs[0].payloads[i], runs[1].payloads[i]) {
			t.Errorf("checkin %d: %s: %s\n%s: %s", i, names[0], runs[0].payloads[i], names[1], runs[1].payloads[i])
		}
	}
	if !bytes.Equal(runs[0].export, runs[1].export) {
		t.Errorf("exports differ:\n%s\n%s", runs[0].export, runs[1].export)
	}
}
