package ingest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// The attacks of issue 12 item 1, each answered by the assignment and date
// rules: with a stolen kiosk certificate one cannot book another kiosk's
// event, backdate taps, or date them in the year 1.
func TestAssignmentRules(t *testing.T) { eachBackend(t, testAssignmentRules) }

func testAssignmentRules(t *testing.T, open opener) {
	ctx := context.Background()
	l := open(t, DefaultOpts())
	setup(t, l) // passholders only
	pushed := mustTime(t, "2026-11-20T08:00:00Z")
	dayA := Event{ID: "evt-a", Points: 1, Period: protocol.PeriodDay, Volume: 1}
	if _, err := l.AssignEvent(ctx, "kiosk-a-01", "balie-a", dayA, pushed); err != nil {
		t.Fatal(err)
	}
	// B's event books 3 points; the events table says 1: the assignment wins.
	evB := Event{ID: "evt-b", Points: 3, Period: protocol.PeriodAbsolute, Volume: 1}
	if _, err := l.AssignEvent(ctx, "kiosk-b-01", "balie-b", evB, pushed); err != nil {
		t.Fatal(err)
	}
	if err := l.UpsertEvent(ctx, Event{ID: "evt-b", Points: 1, Period: protocol.PeriodDay, Volume: 9}); err != nil {
		t.Fatal(err)
	}
	now := mustTime(t, "2026-11-24T10:00:00Z")
	tap := func(device, event string, tapped time.Time, synced bool) Outcome {
		t.Helper()
		c := checkin(t, chipA, event, tapped)
		c.DeviceID, c.ClockSynced = device, synced
		return process1(t, l, c, now)
	}
	for _, tc := range []struct {
		name, device, event string
		tapped              time.Time
		want                string
	}{
		{"A books B's event", "kiosk-a-01", "evt-b", now, protocol.StatusEventNotFound},
		{"an event nobody assigned", "kiosk-a-01", "evt-zz", now, protocol.StatusEventNotFound},
		{"backdated before the assignment", "kiosk-a-01", "evt-a", pushed.Add(-time.Hour), protocol.StatusCheckinNotAllowed},
		{"dated in the year 1", "kiosk-a-01", "evt-a", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), protocol.StatusCheckinNotAllowed},
		{"older than the bound", "kiosk-b-01", "evt-b", now.Add(-8 * 24 * time.Hour), protocol.StatusCheckinNotAllowed},
		{"far ahead of the receipt", "kiosk-b-01", "evt-b", now.Add(time.Hour), protocol.StatusCheckinNotAllowed},
		{"B at its own event, slightly ahead", "kiosk-b-01", "evt-b", now.Add(time.Minute), protocol.StatusSaved},
	} {
		o := tap(tc.device, tc.event, tc.tapped, true)
		if o.Result.Status != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, o.Result.Status, tc.want)
		}
		if tc.want == protocol.StatusSaved && o.Result.NewPoints != 3 {
			t.Errorf("%s: %d points, want the assignment's 3", tc.name, o.Result.NewPoints)
		}
		if tc.want != protocol.StatusSaved && o.Result.EndUserMessage["nl"] == "" {
			t.Errorf("%s: no message", tc.name)
		}
	}
	// Seven taps backdated a day apart on a once-a-day event: the five days
	// since the assignment (pushed 20 November 08:00) count, each once;
	// the 19th and 18th do not.
	saved := 0
	for d := range 7 {
		if tap("kiosk-a-01", "evt-a", now.Add(-time.Duration(d)*24*time.Hour), true).Result.Status == protocol.StatusSaved {
			saved++
		}
	}
	if saved != 5 {
		t.Errorf("saved %d of 7 backdated days, want the 5 since the assignment", saved)
	}
	// An unsynced tap is dated by the receipt: booked under the assignment.
	if o := tap("kiosk-b-01", "evt-b", time.Unix(5, 0), false); o.Result.Status != protocol.StatusMaximumReached {
		t.Errorf("unsynced tap at B: %s, want maximum-reached (dated now, ABSOLUTE 1 already saved)", o.Result.Status)
	}
	// Every refusal was recorded once: its replay is the same bytes.
	c := checkin(t, chipB, "evt-b", now)
	c.DeviceID = "kiosk-a-01"
	first := process1(t, l, c, now)
	again := process1(t, l, c, now.Add(time.Minute))
	if !again.Replay || string(again.Payload) != string(first.Payload) {
		t.Errorf("refusal replay: %s (replay %v), first %s", again.Payload, again.Replay, first.Payload)
	}
}

// TestAssignmentHandover: a kiosk given a new event keeps booking its old one
// for the handover after the push (it may be offline and learn it late),
// and not after that; the new one books from its push.
func TestAssignmentHandover(t *testing.T) { eachBackend(t, testAssignmentHandover) }

func testAssignmentHandover(t *testing.T, open opener) {
	ctx := context.Background()
	o := DefaultOpts()
	o.MaxAge = 30 * 24 * time.Hour
	l := open(t, o)
	setup(t, l)
	t0 := mustTime(t, "2026-11-01T08:00:00Z")
	old := Event{ID: "evt-old", Points: 1, Period: protocol.PeriodAbsolute, Volume: 100}
	next := Event{ID: "evt-new", Points: 1, Period: protocol.PeriodAbsolute, Volume: 100}
	if _, err := l.AssignEvent(ctx, "kiosk-h-01", "", old, t0); err != nil {
		t.Fatal(err)
	}
	pushed := t0.Add(72 * time.Hour)
	if _, err := l.AssignEvent(ctx, "kiosk-h-01", "", next, pushed); err != nil {
		t.Fatal(err)
	}
	rcv := pushed.Add(48 * time.Hour)
	for _, tc := range []struct {
		event  string
		tapped time.Time
		want   string
	}{
		{"evt-old", pushed.Add(-time.Hour), protocol.StatusSaved},
		{"evt-old", pushed.Add(23 * time.Hour), protocol.StatusSaved},
		{"evt-old", pushed.Add(25 * time.Hour), protocol.StatusCheckinNotAllowed},
		{"evt-new", pushed.Add(-time.Hour), protocol.StatusCheckinNotAllowed},
		{"evt-new", pushed.Add(time.Hour), protocol.StatusSaved},
	} {
		c := checkin(t, chipA, tc.event, tc.tapped)
		c.DeviceID = "kiosk-h-01"
		if got := process1(t, l, c, rcv).Result.Status; got != tc.want {
			t.Errorf("%s tapped %s: %s, want %s", tc.event, protocol.FormatTime(tc.tapped), got, tc.want)
		}
	}
	as, err := l.Assignments(ctx, "kiosk-h-01")
	if err != nil || len(as) != 2 || !as[0].ReplacedAt.IsZero() || !as[1].ReplacedAt.Equal(pushed) {
		t.Fatalf("assignments %+v, %v", as, err)
	}
}

// TestAssignmentOfConfig: a signed Config is an assignment of the device
// whose topic it came on; another key, another device or garbage is not.
func TestAssignmentOfConfig(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := protocol.Config{Serial: 7, DeviceID: "kiosk-c-01", EventID: "evt-c", CounterID: "balie-c", Points: 2,
		Constraint: protocol.Constraint{Period: protocol.PeriodWeek, Volume: 1}, IssuedAt: "2026-11-20T08:00:00Z",
		ValidUntil: "2026-12-31T23:00:00Z"}
	signed, err := protocol.SignConfig(cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	rcv := mustTime(t, "2026-11-21T00:00:00Z")
	a, err := AssignmentOf(signed, "kiosk-c-01", pub, rcv)
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != 7 || a.Event.Points != 2 || a.Event.Period != protocol.PeriodWeek || a.CounterID != "balie-c" ||
		!a.AssignedAt.Equal(mustTime(t, "2026-11-20T08:00:00Z")) || a.Event.ValidUntil.IsZero() {
		t.Errorf("assignment %+v", a)
	}
	if _, err := AssignmentOf(signed, "kiosk-d-01", pub, rcv); !errors.Is(err, ErrNotBound) {
		t.Errorf("on another device's topic: %v", err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := AssignmentOf(signed, "kiosk-c-01", otherPub, rcv); !errors.Is(err, protocol.ErrBadSig) {
		t.Errorf("another key: %v", err)
	}
	for _, junk := range [][]byte{nil, []byte("{"), []byte(`{"v":1}`), signed[:len(signed)-5]} {
		if _, err := AssignmentOf(junk, "kiosk-c-01", pub, rcv); err == nil {
			t.Errorf("%q accepted", junk)
		}
	}
	l := openLedger(t, DefaultOpts())
	for range 2 { // the second time is already recorded
		if _, err := l.Assign(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if as, err := l.Assignments(context.Background(), ""); err != nil || len(as) != 1 {
		t.Fatalf("%d assignments, %v", len(as), err)
	}
}
