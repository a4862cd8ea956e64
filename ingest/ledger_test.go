package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/uitpas/tap-kiosk/protocol"
)

const (
	chipA = "042F51B2712380"
	chipB = "044D71DA862680"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openLedger opens a SQLite ledger in the test's directory.
func openLedger(t testing.TB, o Opts) *Ledger {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "ledger.db"), o)
}

func newID(t testing.TB) string {
	t.Helper()
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

var seqs int64

func checkin(t testing.TB, chip, event string, at time.Time) protocol.Checkin {
	seqs++
	return protocol.Checkin{V: 1, ID: newID(t), DeviceID: "kiosk-test-01", Seq: seqs, ChipNumber: chip,
		EventID: event, CounterID: "balie", TappedAt: protocol.FormatTime(at), ClockSynced: true,
		BootID: "boot-1", UptimeMs: 1000}
}

func process1(t testing.TB, l *Ledger, c protocol.Checkin, rcv time.Time) Outcome {
	t.Helper()
	out, err := l.ProcessBatch(context.Background(), []Input{{Checkin: c, ReceivedAt: rcv}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// assignedSince is when the tests' assignments were issued: before every
// tap they make.
var assignedSince = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// assign makes e the latest assignment of each device (the test kiosk when
// none is named), issued at assignedSince, and returns e.
func assign(t testing.TB, l *Ledger, e Event, devices ...string) Event {
	t.Helper()
	if len(devices) == 0 {
		devices = []string{"kiosk-test-01"}
	}
	for _, d := range devices {
		as, err := l.Assignments(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		serial := int64(1)
		if len(as) > 0 {
			serial = as[0].Serial + 1
		}
		if _, err := l.Assign(context.Background(), Assignment{DeviceID: d, Serial: serial, Event: e,
			AssignedAt: assignedSince}); err != nil {
			t.Fatal(err)
		}
		// A kiosk runs one event at a time, but these tests book several
		// on one device: every assignment of theirs stays in force.
		if _, err := l.DB().Exec(l.d.bind(`UPDATE assignments SET replaced_ms = NULL WHERE device_id = ?`), d); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func setup(t testing.TB, l *Ledger, events ...Event) {
	t.Helper()
	ctx := context.Background()
	for _, e := range events {
		assign(t, l, e)
	}
	for _, chip := range []string{chipA, chipB} {
		if err := l.SetPassholder(ctx, Passholder{ChipNumber: chip, TotalPoints: 22}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExactlyOnceAndReplay(t *testing.T) { eachBackend(t, testExactlyOnceAndReplay) }

func testExactlyOnceAndReplay(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	now := mustTime(t, "2026-11-24T09:12:33.481Z")
	c := checkin(t, chipA, "evt-1", now)

	first := process1(t, l, c, now.Add(time.Second))
	if first.Result.Status != protocol.StatusSaved || first.Result.NewPoints != 1 || first.Result.TotalPoints != 23 || first.Replay {
		t.Fatalf("first = %+v", first)
	}
	if got := first.Result.EndUserMessage["nl"]; got != savedMessage(1, 23)["nl"] {
		t.Errorf("nl = %q", got)
	}
	for _, lang := range []string{"fr", "en"} {
		if first.Result.EndUserMessage[lang] == "" {
			t.Errorf("no %s message", lang)
		}
	}
	// Replayed later, and twice within one batch: the same bytes, no booking.
	again := process1(t, l, c, now.Add(time.Hour))
	if !again.Replay || !bytes.Equal(again.Payload, first.Payload) {
		t.Fatalf("replay = %+v\n%s\n%s", again, again.Payload, first.Payload)
	}
	out, err := l.ProcessBatch(context.Background(), []Input{{c, now}, {c, now}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if !o.Replay || !bytes.Equal(o.Payload, first.Payload) {
			t.Fatalf("batch replay = %s", o.Payload)
		}
	}
	p, err := l.Passholder(context.Background(), chipA)
	if err != nil || p.TotalPoints != 23 {
		t.Fatalf("passholder = %+v, %v", p, err)
	}
	// The bytes survive a restart.
	path := l.path
	l.Close()
	l2, err := Open(path, DefaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if o := process1(t, l2, c, now); !bytes.Equal(o.Payload, first.Payload) {
		t.Fatalf("after reopen: %s", o.Payload)
	}
	if n := countEntries(t, l2); n != 1 {
		t.Fatalf("ledger rows = %d, want 1", n)
	}
}

func TestBatchDuplicatesAndSameChip(t *testing.T) { eachBackend(t, testBatchDuplicatesAndSameChip) }

func testBatchDuplicatesAndSameChip(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 2, Period: "DAY", Volume: 1})
	now := mustTime(t, "2026-11-24T09:12:33Z")
	c1 := checkin(t, chipA, "evt-1", now)
	c2 := checkin(t, chipA, "evt-1", now.Add(time.Second)) // a second tap, a new id
	c3 := checkin(t, chipB, "evt-1", now)
	rs, err := l.Process(context.Background(), []protocol.Checkin{c1, c1, c2, c3, c2}, now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"saved", "saved", "maximum-reached", "saved", "maximum-reached"}
	for i, r := range rs {
		if r.Status != want[i] {
			t.Errorf("result %d = %s, want %s", i, r.Status, want[i])
		}
	}
	if rs[0].TotalPoints != 24 || rs[2].TotalPoints != 24 || rs[2].NewPoints != 0 {
		t.Errorf("points: %+v %+v", rs[0], rs[2])
	}
	if got := rs[2].EndUserMessage["nl"]; got != maximumMessage("DAY", 1)["nl"] {
		t.Errorf("maximum nl = %q", got)
	}
	if n := countEntries(t, l); n != 3 {
		t.Errorf("ledger rows = %d, want 3", n)
	}
}

// TestPeriods books a first tap, a second in the same period (refused), one
// in the next period and one just before the first's period (both saved),
// across Brussels DST changes and ISO-week and quarter boundaries.
func TestPeriods(t *testing.T) { eachBackend(t, testPeriods) }

func testPeriods(t *testing.T, open opener) {
	cases := []struct {
		name, period              string
		first, same, next, before string
	}{
		// 29 March 2026: 02:00 CET → 03:00 CEST, a 23-hour day.
		{"day spring DST", "DAY", "2026-03-28T23:00:00Z", "2026-03-29T21:59:59.999Z", "2026-03-29T22:00:00Z", "2026-03-28T22:59:59.999Z"},
		// 25 October 2026: 03:00 CEST → 02:00 CET, a 25-hour day.
		{"day autumn DST", "DAY", "2026-10-24T22:00:00Z", "2026-10-25T22:59:59Z", "2026-10-25T23:00:00Z", "2026-10-24T21:59:59Z"},
		// Brussels' day, not UTC's: 23:30Z is already the next day in CET.
		{"day local not UTC", "DAY", "2026-11-24T23:30:00Z", "2026-11-25T12:00:00Z", "2026-11-25T23:00:00Z", "2026-11-24T22:59:00Z"},
		// ISO week 13 of 2026: Mon 23 March 00:00 CET to Mon 30 March 00:00 CEST.
		{"iso week DST", "WEEK", "2026-03-22T23:00:00Z", "2026-03-29T21:59:59Z", "2026-03-29T22:00:00Z", "2026-03-22T22:59:59Z"},
		// ISO week 53 of 2026 runs from Mon 28 Dec 2026 to Sun 3 Jan 2027.
		{"iso week over new year", "WEEK", "2026-12-31T12:00:00Z", "2027-01-03T22:59:59Z", "2027-01-03T23:00:00Z", "2026-12-27T22:59:59Z"},
		{"month autumn DST", "MONTH", "2026-09-30T22:00:00Z", "2026-10-31T22:59:59Z", "2026-10-31T23:00:00Z", "2026-09-30T21:59:59Z"},
		// Q2 starts 1 April 00:00 CEST (22:00Z); Q1 ended in CEST too.
		{"quarter Q1 to Q2", "QUARTER", "2026-03-31T22:00:00Z", "2026-06-30T21:59:59Z", "2026-06-30T22:00:00Z", "2026-03-31T21:59:59Z"},
		// Q4 starts in CEST and ends in CET.
		{"quarter Q4 to Q1", "QUARTER", "2026-09-30T22:00:00Z", "2026-12-31T22:59:59Z", "2026-12-31T23:00:00Z", "2026-09-30T21:59:59Z"},
		{"year", "YEAR", "2025-12-31T23:00:00Z", "2026-12-31T22:59:59.999Z", "2026-12-31T23:00:00Z", "2025-12-31T22:59:59.999Z"},
		{"absolute", "ABSOLUTE", "2026-01-01T00:00:00Z", "2031-06-01T00:00:00Z", "", ""},
	}
	l := open(t, DefaultOpts())
	setup(t, l)
	// Each tap is received as it is made: tappedAt is used as is.
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := Event{ID: "evt-p" + string(rune('a'+i)), Points: 1, Period: tc.period, Volume: 1}
			assign(t, l, ev)
			steps := []struct{ at, want string }{
				{tc.first, "saved"}, {tc.same, "maximum-reached"}, {tc.next, "saved"}, {tc.before, "saved"},
			}
			for _, s := range steps {
				if s.at == "" {
					continue
				}
				o := process1(t, l, checkin(t, chipA, ev.ID, mustTime(t, s.at)), mustTime(t, s.at))
				if o.Result.Status != s.want {
					t.Errorf("tap at %s: %s, want %s", s.at, o.Result.Status, s.want)
				}
			}
		})
	}
}

func TestBucketBoundaries(t *testing.T) {
	loc := DefaultOpts().Location
	s, e := Bucket("WEEK", mustTime(t, "2027-01-01T12:00:00Z"), loc)
	if !s.Equal(mustTime(t, "2026-12-27T23:00:00Z")) || !e.Equal(mustTime(t, "2027-01-03T23:00:00Z")) {
		t.Errorf("week = %v … %v", s, e)
	}
	s, e = Bucket("DAY", mustTime(t, "2026-10-25T12:00:00Z"), loc)
	if e.Sub(s) != 25*time.Hour {
		t.Errorf("25-hour day: %v", e.Sub(s))
	}
	s, e = Bucket("QUARTER", mustTime(t, "2026-11-24T12:00:00Z"), loc)
	if !s.Equal(mustTime(t, "2026-09-30T22:00:00Z")) || !e.Equal(mustTime(t, "2026-12-31T23:00:00Z")) {
		t.Errorf("quarter = %v … %v", s, e)
	}
}

func TestVolume(t *testing.T) { eachBackend(t, testVolume) }

func testVolume(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-v", Points: 1, Period: "WEEK", Volume: 2})
	at := mustTime(t, "2026-11-24T10:00:00Z")
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, process1(t, l, checkin(t, chipA, "evt-v", at.Add(time.Duration(i)*time.Hour)), at.Add(time.Hour*5)).Result.Status)
	}
	if strings.Join(got, ",") != "saved,saved,maximum-reached" {
		t.Fatalf("got %v", got)
	}
}

func TestUnknownChipAndEvent(t *testing.T) { eachBackend(t, testUnknownChipAndEvent) }

func testUnknownChipAndEvent(t *testing.T, open opener) {
	at := mustTime(t, "2026-11-24T10:00:00Z")
	const unknown = "04AABBCCDDEE01"
	t.Run("refused", func(t *testing.T) {
		l := open(t, DefaultOpts())
		setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
		if o := process1(t, l, checkin(t, unknown, "evt-1", at), at); o.Result.Status != protocol.StatusPassholderNotFound || o.Result.EndUserMessage["nl"] == "" {
			t.Errorf("unknown chip: %s", o.Payload)
		}
		if o := process1(t, l, checkin(t, chipA, "evt-nope", at), at); o.Result.Status != protocol.StatusEventNotFound {
			t.Errorf("unknown event: %s", o.Payload)
		}
		if _, err := l.Passholder(context.Background(), unknown); !errors.Is(err, ErrNotFound) {
			t.Errorf("passholder created: %v", err)
		}
	})
	t.Run("enrolled", func(t *testing.T) {
		o := DefaultOpts()
		o.EnrollUnknown = true
		o.Default = Event{Period: "WEEK", Volume: 1, Points: 3}
		l := open(t, o)
		out := process1(t, l, checkin(t, unknown, "evt-new", at), at)
		if out.Result.Status != protocol.StatusSaved || out.Result.NewPoints != 3 || out.Result.TotalPoints != 3 {
			t.Fatalf("enrolled: %s", out.Payload)
		}
		if got := out.Result.EndUserMessage["nl"]; got != savedMessage(3, 3)["nl"] {
			t.Errorf("nl = %q", got)
		}
		ev, err := l.Event(context.Background(), "evt-new")
		if err != nil || ev.Period != "WEEK" || ev.Points != 3 {
			t.Fatalf("event = %+v, %v", ev, err)
		}
		if o := process1(t, l, checkin(t, unknown, "evt-new", at.Add(24*time.Hour)), at.Add(24*time.Hour)); o.Result.Status != protocol.StatusMaximumReached {
			t.Errorf("same week: %s", o.Payload)
		} else if o.Result.EndUserMessage["nl"] != maximumMessage("WEEK", 1)["nl"] {
			t.Errorf("nl = %q", o.Result.EndUserMessage["nl"])
		}
	})
}

func TestBlockedInvalidAndWindow(t *testing.T) { eachBackend(t, testBlockedInvalidAndWindow) }

func testBlockedInvalidAndWindow(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	from, until := mustTime(t, "2026-11-24T08:00:00Z"), mustTime(t, "2026-11-24T22:00:00Z")
	setup(t, l, Event{ID: "evt-w", Points: 1, Period: "DAY", Volume: 1, ValidFrom: from, ValidUntil: until})
	ctx := context.Background()
	if err := l.SetPassholder(ctx, Passholder{ChipNumber: chipB, TotalPoints: 5, Blocked: true}); err != nil {
		t.Fatal(err)
	}
	in := mustTime(t, "2026-11-24T09:00:00Z")
	cases := []struct {
		name string
		c    protocol.Checkin
		want string
	}{
		{"blocked", checkin(t, chipB, "evt-w", in), protocol.StatusCardBlocked},
		{"random uid", checkin(t, "08A1B2C3", "evt-w", in), protocol.StatusInvalidRequest},
		{"lower-case chip", checkin(t, strings.ToLower(chipA), "evt-w", in), protocol.StatusInvalidRequest},
		{"odd length chip", checkin(t, "042F51B27123", "evt-w", in), protocol.StatusInvalidRequest},
		{"before window", checkin(t, chipA, "evt-w", from.Add(-time.Minute)), protocol.StatusCheckinNotAllowed},
		{"after window", checkin(t, chipA, "evt-w", until), protocol.StatusCheckinNotAllowed},
		{"in window", checkin(t, chipA, "evt-w", in), protocol.StatusSaved},
	}
	for _, tc := range cases {
		o := process1(t, l, tc.c, until.Add(time.Hour))
		if o.Result.Status != tc.want || o.Result.EndUserMessage["nl"] == "" {
			t.Errorf("%s: %s, want %s", tc.name, o.Payload, tc.want)
		}
		if o.Result.Status != protocol.StatusSaved && o.Result.NewPoints != 0 {
			t.Errorf("%s: points booked on refusal", tc.name)
		}
		// A refusal is recorded too: its replay is identical.
		if r := process1(t, l, tc.c, until.Add(2*time.Hour)); !r.Replay || !bytes.Equal(r.Payload, o.Payload) {
			t.Errorf("%s: replay %s != %s", tc.name, r.Payload, o.Payload)
		}
	}
	if p, _ := l.Passholder(ctx, chipB); p.TotalPoints != 5 {
		t.Errorf("blocked card got points: %+v", p)
	}
}

func TestIDCollisionAcrossDevices(t *testing.T) { eachBackend(t, testIDCollisionAcrossDevices) }

func testIDCollisionAcrossDevices(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	at := mustTime(t, "2026-11-24T09:00:00Z")
	c := checkin(t, chipA, "evt-1", at)
	first := process1(t, l, c, at)
	other := c
	other.DeviceID = "kiosk-other-02"
	o := process1(t, l, other, at)
	if !o.Collision || o.Result.Status != protocol.StatusInvalidRequest || o.Result.TotalPoints != 0 {
		t.Fatalf("collision = %+v", o)
	}
	if r := process1(t, l, c, at); !bytes.Equal(r.Payload, first.Payload) {
		t.Fatalf("owner's replay changed: %s", r.Payload)
	}
	if n := countEntries(t, l); n != 1 {
		t.Fatalf("rows = %d", n)
	}
}

func datedAt(t *testing.T, l *Ledger, id string) string {
	t.Helper()
	var got string
	l.Entries(context.Background(), func(e Entry) error {
		if e.ID == id {
			got = e.DatedAt
		}
		return nil
	})
	return got
}

func TestUnsyncedClockDating(t *testing.T) { eachBackend(t, testUnsyncedClockDating) }

func testUnsyncedClockDating(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	unsynced := func(chip string, boot string, uptime int64) protocol.Checkin {
		c := checkin(t, chip, "evt-1", mustTime(t, "1970-01-01T00:02:00Z"))
		c.ClockSynced, c.BootID, c.UptimeMs = false, boot, uptime
		return c
	}
	// 00:00:03 in Brussels on 25 November.
	r := mustTime(t, "2026-11-24T23:00:03Z")

	t.Run("separate batches", func(t *testing.T) {
		late := unsynced(chipA, "boot-a", 10_000) // tapped at 00:00:03
		early := unsynced(chipA, "boot-a", 4_000) // tapped 6 s earlier: still 24 November
		if o := process1(t, l, late, r); o.Result.Status != protocol.StatusSaved {
			t.Fatalf("late: %s", o.Payload)
		}
		// Arrives 5 s later (a retry): dated from when the latest one arrived.
		if o := process1(t, l, early, r.Add(5*time.Second)); o.Result.Status != protocol.StatusSaved {
			t.Fatalf("early: %s (dated %s)", o.Payload, datedAt(t, l, early.ID))
		}
		if got := datedAt(t, l, early.ID); got != "2026-11-24T22:59:57.000Z" {
			t.Errorf("early dated %s", got)
		}
		if got := datedAt(t, l, late.ID); got != "2026-11-24T23:00:03.000Z" {
			t.Errorf("late dated %s", got)
		}
	})
	t.Run("one batch", func(t *testing.T) {
		early := unsynced(chipB, "boot-b", 4_000)
		late := unsynced(chipB, "boot-b", 10_000)
		out, err := l.ProcessBatch(context.Background(), []Input{{early, r}, {late, r}})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Result.Status != protocol.StatusSaved || out[1].Result.Status != protocol.StatusSaved {
			t.Fatalf("got %s / %s", out[0].Payload, out[1].Payload)
		}
		if got := datedAt(t, l, early.ID); got != "2026-11-24T22:59:57.000Z" {
			t.Errorf("early dated %s", got)
		}
	})
	t.Run("no boot id", func(t *testing.T) {
		c := unsynced(chipA, "", 1)
		process1(t, l, c, r.Add(time.Minute))
		if got := datedAt(t, l, c.ID); got != "2026-11-24T23:01:03.000Z" {
			t.Errorf("dated %s, want the receipt", got)
		}
	})
	t.Run("synced clock in the future", func(t *testing.T) {
		c := checkin(t, chipA, "evt-1", r.Add(48*time.Hour))
		process1(t, l, c, r.Add(2*time.Minute))
		if got := datedAt(t, l, c.ID); got != "2026-11-24T23:02:03.000Z" {
			t.Errorf("dated %s, want the receipt", got)
		}
	})
}

func TestWriteJSONLines(t *testing.T) { eachBackend(t, testWriteJSONLines) }

func testWriteJSONLines(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	at := mustTime(t, "2026-11-24T09:00:00Z")
	c := checkin(t, chipA, "evt-1", at)
	process1(t, l, c, at.Add(time.Second))
	process1(t, l, checkin(t, chipA, "evt-1", at), at.Add(time.Second))
	var buf bytes.Buffer
	if err := l.WriteJSONLines(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "deviceId", "seq", "chipNumber", "eventId", "status", "points", "tappedAt", "receivedAt"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %s missing in %s", k, lines[0])
		}
	}
	if m["id"] != c.ID || m["status"] != "saved" || m["points"] != 1.0 || m["receivedAt"] != "2026-11-24T09:00:01.000Z" {
		t.Errorf("line = %s", lines[0])
	}
}

func TestParseEvent(t *testing.T) {
	e, err := ParseEvent("evt-7781:day:1:2@2026-11-24T08:00:00Z/")
	if err != nil || e.ID != "evt-7781" || e.Period != "DAY" || e.Volume != 1 || e.Points != 2 ||
		!e.ValidFrom.Equal(mustTime(t, "2026-11-24T08:00:00Z")) || !e.ValidUntil.IsZero() {
		t.Fatalf("got %+v, %v", e, err)
	}
	for _, bad := range []string{"", "evt", "evt:DAY:1", "evt:HOUR:1:1", "evt:DAY:0:1", "evt:DAY:1:-1",
		"evt:DAY:x:1", "evt:DAY:1:1@2026", "evt:DAY:1:1@x/", "evt:DAY:1:1@2026-11-24T08:00:00Z/2026-11-24T07:00:00Z"} {
		if _, err := ParseEvent(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseEvent(%q) = %v", bad, err)
		}
	}
}

func countEntries(t testing.TB, l *Ledger) int {
	t.Helper()
	n := 0
	if err := l.Entries(context.Background(), func(Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBucketAgreesWithProtocol checks that the ledger's intervals are the
// kiosk's period keys (protocol.PeriodBucket): same key inside, a new key at
// the end.
func TestBucketAgreesWithProtocol(t *testing.T) {
	loc := DefaultOpts().Location
	start := mustTime(t, "2026-01-01T00:00:00Z")
	for _, p := range []string{"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"} {
		for at := start; at.Before(start.AddDate(2, 0, 0)); at = at.Add(37*time.Hour + 11*time.Minute) {
			s, e := Bucket(p, at, loc)
			k, _ := protocol.PeriodBucket(p, at, loc)
			ks, _ := protocol.PeriodBucket(p, s, loc)
			ke, _ := protocol.PeriodBucket(p, e.Add(-time.Millisecond), loc)
			kn, _ := protocol.PeriodBucket(p, e, loc)
			if at.Before(s) || !at.Before(e) || ks != k || ke != k || kn == k {
				t.Fatalf("%s at %v: [%v, %v) keys %s %s %s %s", p, at, s, e, k, ks, ke, kn)
			}
		}
	}
}

func TestEnrollAndSetBlocked(t *testing.T) { eachBackend(t, testEnrollAndSetBlocked) }

func testEnrollAndSetBlocked(t *testing.T, open opener) {
	l := open(t, DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	ctx := context.Background()
	if err := l.Enroll(ctx, chipA); err != nil { // already there: points kept
		t.Fatal(err)
	}
	if err := l.SetBlocked(ctx, chipA, true); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Passholder(ctx, chipA); err != nil || !p.Blocked || p.TotalPoints != 22 {
		t.Fatalf("%+v %v", p, err)
	}
	if err := l.Enroll(ctx, "08123456"); err == nil {
		t.Error("random UID enrolled")
	}
	if err := l.SetBlocked(ctx, "04AABBCCDDEE02", true); err != nil {
		t.Fatal(err)
	}
	at := mustTime(t, "2026-11-24T09:00:00Z")
	if o := process1(t, l, checkin(t, "04AABBCCDDEE02", "evt-1", at), at); o.Result.Status != protocol.StatusCardBlocked {
		t.Errorf("%s", o.Payload)
	}
}

// FuzzProcess books arbitrary field values: never an error, always one known
// status, and the replay is identical.
func FuzzProcess(f *testing.F) { fuzzProcess(f, openLedger) }

// FuzzProcessPostgres is FuzzProcess on PostgreSQL, whose text type refuses
// bytes SQLite stores: no input may make a batch fail.
func FuzzProcessPostgres(f *testing.F) {
	fuzzProcess(f, func(tb testing.TB, o Opts) *Ledger { return openAt(tb, pgDSN(tb), o) })
}

func fuzzProcess(f *testing.F, open func(testing.TB, Opts) *Ledger) {
	f.Add(chipA, "evt-1", "2026-11-24T09:12:33.481Z", true, "boot", int64(1000))
	f.Add("08123456", "", "1970-01-01T00:00:00Z", false, "", int64(-1))
	f.Add("04AABBCCDDEEFF0011", "evt-x", "9999-12-31T23:59:59Z", false, "b", int64(1)<<62)
	f.Add(chipA, "evt-\x00", "2026-11-24T09:12:33\x00Z", false, "b\x00", int64(5))
	f.Add("04AABB\xffDDEEFF", "evt-\xff", "\xff", false, "\xfe", int64(5))
	o := DefaultOpts()
	o.EnrollUnknown = true
	l := open(f, o)
	rcv := mustTime(f, "2026-11-24T10:00:00Z")
	f.Fuzz(func(t *testing.T, chip, event, tapped string, synced bool, boot string, uptime int64) {
		c := protocol.Checkin{V: 1, ID: newID(t), DeviceID: "kiosk-fuzz-01", Seq: 1, ChipNumber: chip, EventID: event,
			TappedAt: tapped, ClockSynced: synced, BootID: boot, UptimeMs: uptime}
		out, err := l.ProcessBatch(context.Background(), []Input{{c, rcv}, {c, rcv.Add(time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		if !protocol.KnownStatus(out[0].Result.Status) || !out[1].Replay || !bytes.Equal(out[0].Payload, out[1].Payload) {
			t.Fatalf("%+v", out)
		}
		if _, err := protocol.DecodeResult(out[0].Payload); err != nil {
			t.Fatal(err)
		}
	})
}
