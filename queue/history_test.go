package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

// bucketEnd must never end a period before protocol's calendar (in
// Brussels, the kiosk's zone, and in a zone far west) says it ends, and
// must not keep it much longer.
func TestBucketEndCoversPeriod(t *testing.T) {
	brussels, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	for _, loc := range []*time.Location{brussels, time.FixedZone("UTC-11", -11*3600), time.FixedZone("UTC+14", 14*3600)} {
		for at := time.Date(2025, 12, 20, 0, 0, 0, 0, time.UTC); at.Before(time.Date(2028, 1, 10, 0, 0, 0, 0, time.UTC)); at = at.Add(7*time.Hour + 13*time.Minute) {
			for _, p := range []string{protocol.PeriodDay, protocol.PeriodWeek, protocol.PeriodMonth, protocol.PeriodQuarter, protocol.PeriodYear} {
				b, err := protocol.PeriodBucket(p, at, loc)
				if err != nil {
					t.Fatal(err)
				}
				_, end, _ := protocol.PeriodRange(p, at, loc)
				got, ok := bucketEnd(b)
				if !ok {
					t.Fatalf("%s: bucket %q not understood", p, b)
				}
				if pruned := got.Add(historyGrace); pruned.Before(end) || pruned.Sub(end) > 3*24*time.Hour {
					t.Fatalf("%s %v in %v: bucket %q pruned at %v, period ends %v", p, at, loc, b, pruned, end)
				}
			}
		}
	}
	for _, b := range []string{"A", "", "B", "DAY", "DAY:2026-11-24", "D2026-13-01", "W2026-54", "Q2026-5", "M2026-00", "Y26", "Y+026",
		"D2026-11-24x", "M2026", "W2026", "Q2026", "D2026", "M2026-", "W2026-4x", "Q2026-", "Y2026-01", "\xff\xfe\xfd\xfc\xfb"} {
		if _, ok := bucketEnd(b); ok {
			t.Errorf("bucket %q understood", b)
		}
	}
}

// bucketEnd reads buckets from the database: any string, never a panic.
func FuzzBucketEnd(f *testing.F) {
	for _, b := range []string{"D2026-11-24", "W2026-48", "M2026-11", "Q2026-4", "Y2026", "A", "M2026"} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b string) { bucketEnd(b) })
}

// The history keeps what the longest period needs and no more, prunes
// itself daily off the tap path, and keeps ABSOLUTE rows.
func TestPruneHistory(t *testing.T) {
	ctx := context.Background()
	brussels, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// Tuesday 24 November 2026, 10:12 in Brussels.
	fc := clock.NewFake(time.Date(2026, 11, 24, 9, 12, 0, 0, time.UTC))
	ob := openTest(t, "", Opts{Clock: fc})
	periods := []string{protocol.PeriodDay, protocol.PeriodWeek, protocol.PeriodMonth, protocol.PeriodQuarter,
		protocol.PeriodYear, protocol.PeriodAbsolute}
	bucket := map[string]string{}
	for i, p := range periods {
		b, _ := protocol.PeriodBucket(p, fc.Now(), brussels)
		bucket[p] = b
		it := mustEnqueue(t, ob, entry(fmt.Sprintf("0400000000000%d", i), b))
		if _, err := ob.Done(ctx, it.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	other := mustEnqueue(t, ob, entry("04000000000099", "B")) // another form, still pending
	used := func(p string) int {
		i := 0
		for j, q := range periods {
			if q == p {
				i = j
			}
		}
		n, err := ob.Used(ctx, fmt.Sprintf("0400000000000%d", i), "evt-1", bucket[p])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	left := func() []string {
		var l []string
		for _, p := range periods {
			if used(p) > 0 {
				l = append(l, p)
			}
		}
		return l
	}
	steps := []struct {
		to   time.Time
		want string
	}{
		{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "[DAY WEEK MONTH QUARTER YEAR ABSOLUTE]"}, // the next day: within the grace
		{time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), "[WEEK MONTH QUARTER YEAR ABSOLUTE]"},
		{time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), "[WEEK MONTH QUARTER YEAR ABSOLUTE]"}, // ISO week 48 ended on Monday 30th
		{time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), "[MONTH QUARTER YEAR ABSOLUTE]"},
		{time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), "[QUARTER YEAR ABSOLUTE]"},
		{time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC), "[QUARTER YEAR ABSOLUTE]"},
		{time.Date(2027, 1, 3, 0, 0, 0, 0, time.UTC), "[ABSOLUTE]"},
		{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "[ABSOLUTE]"},
	}
	for _, s := range steps {
		fc.Set(s.to)
		if _, err := ob.PruneHistory(ctx); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(left()); got != s.want {
			t.Fatalf("at %v: history for %s, want %s", s.to, got, s.want)
		}
	}
	// A bucket of another form goes after 400 days.
	if n, _ := ob.Used(ctx, "04000000000099", "evt-1", "B"); n != 0 {
		t.Errorf("the 'B' row is %v old and still there", fc.Now().Sub(other.QueuedAt))
	}
	if st, _ := ob.Stats(ctx); st.HistoryRows != 1 || st.Bytes != int64(len(other.Body))+EntryOverhead+HistoryRowBytes {
		t.Errorf("stats after the prunes %+v", st)
	}

	// The maintainer prunes by itself once a day.
	b, _ := protocol.PeriodBucket(protocol.PeriodDay, fc.Now(), brussels)
	it := mustEnqueue(t, ob, entry("04000000000077", b))
	ob.Done(ctx, it.ID, true)
	fc.Advance(3 * 24 * time.Hour) // fires the daily timer
	waitfor.Cond(t, "the daily prune", func() bool {
		n, _ := ob.Used(ctx, "04000000000077", "evt-1", b)
		return n == 0
	})
}

// The history counts against MaxBytes and keeps to half of it: a kiosk
// with ABSOLUTE constraints does not fill its queue with history.
func TestHistoryCountsAndIsBounded(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 200_000
	ob := openTest(t, "", Opts{MaxBytes: maxBytes, MinFreeBytes: -1})
	for i := range 3000 {
		it, err := ob.Enqueue(ctx, entry(fmt.Sprintf("04%012X", i), "A"))
		if errors.Is(err, ErrFull) {
			// Only while the prune has not caught up with the share.
			waitfor.Cond(t, "the prune to make room", func() bool {
				st, _ := ob.Stats(ctx)
				return st.Bytes < maxBytes*3/4
			})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ob.Done(ctx, it.ID, true); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if st, _ := ob.Stats(ctx); st.Bytes != HistoryRowBytes || st.HistoryRows != 1 {
				t.Fatalf("one kept history row: %+v", st)
			}
		}
	}
	waitfor.Cond(t, "history within its share", func() bool {
		st, _ := ob.Stats(ctx)
		return st.Bytes <= maxBytes/2
	})
	st, _ := ob.Stats(ctx)
	t.Logf("%+v", st)
	if st.HistoryRows < maxBytes/8/HistoryRowBytes {
		t.Fatalf("pruned too much: %+v", st)
	}
	// The newest rows are the ones kept.
	if n, _ := ob.Used(ctx, fmt.Sprintf("04%012X", 2999), "evt-1", "A"); n != 1 {
		t.Fatal("the newest ABSOLUTE row is gone")
	}
}
