package fleet

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// The outcome history gives the refusals a kiosk counted in any range: a
// row per change of a refusal count (a saved-only change adds none), the
// differences dated by receipt, a queue reset counted from zero again.
func TestOutcomeDeltas(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, _ := openRegistry(t, dsn)
		ctx := context.Background()
		t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		n := 0
		apply := func(at time.Time, event string, counts map[string]int64) {
			t.Helper()
			n++
			s := protocol.Status{V: 1, Online: true, DeviceID: "kiosk-a", EventID: event, Pending: n, ClockSynced: true,
				At: protocol.FormatTime(at), Outcomes: counts}
			if _, err := r.Apply(ctx, []Message{{Status: s, Raw: s.Encode(), ReceivedAt: at}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		apply(t0, "evt-1", map[string]int64{"saved": 3, "already-saved": 1})
		apply(t0.Add(time.Hour), "evt-1", map[string]int64{"saved": 9, "already-saved": 1}) // saved only: no row
		apply(t0.Add(2*time.Hour), "evt-1", map[string]int64{"saved": 9, "already-saved": 4, "blocked": 1})
		apply(t0.Add(24*time.Hour), "evt-2", map[string]int64{"saved": 10, "already-saved": 6, "blocked": 1})
		apply(t0.Add(25*time.Hour), "evt-2", map[string]int64{"no-event": 2}) // the queue was reset
		all, err := r.OutcomeDeltas(ctx, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want := []OutcomeDelta{
			{"kiosk-a", "evt-1", t0, map[string]int64{"already-saved": 1}},
			{"kiosk-a", "evt-1", t0.Add(2 * time.Hour), map[string]int64{"already-saved": 3, "blocked": 1}},
			{"kiosk-a", "evt-2", t0.Add(24 * time.Hour), map[string]int64{"already-saved": 2}},
			{"kiosk-a", "evt-2", t0.Add(25 * time.Hour), map[string]int64{"no-event": 2}},
		}
		if !reflect.DeepEqual(all, want) {
			t.Fatalf("deltas\n%+v\nwant\n%+v", all, want)
		}
		// The second day alone: the differences from the first day's last
		// row, not the counts since the queue began.
		day2, err := r.OutcomeDeltas(ctx, t0.Add(15*time.Hour), t0.Add(39*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(day2, want[2:]) {
			t.Fatalf("day 2 %+v", day2)
		}
	})
}
