package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/protocol"
)

const (
	chipA       = "04A1B2C3D4E5F6"
	chipB       = "04B1B2C3D4E5F7"
	chipC       = "04C1B2C3D4E5FA"
	chipBlocked = "04D1B2C3D4E5F6"
	chipUnknown = "04E1B2C3D4E5F9"
)

// tap is one checkin of the fixture and the status the ledger must give it.
type tap struct {
	at             string // tappedAt (UTC)
	chip, event    string
	counter, kiosk string
	synced         bool
	receivedAt     string // empty: at + 1 s
	want           string
}

// fixture books taps across a Brussels midnight (31 December 2026, UTC+1),
// across the end of summer time (25 October 2026) and across the quarter
// boundaries 2026Q3/Q4 (UTC+2) and 2026Q4/2027Q1, through the ledger's own
// rules, so that the report counts what the ingest booked. The comments
// give each tap's Brussels day.
var fixture = []tap{
	// 2026-09-30 23:30 Brussels: 2026Q3.
	{"2026-09-30T21:30:00Z", chipC, "evt-a", "balie-a", "kiosk-1", true, "", "saved"},
	// 2026-10-01 00:30 Brussels: 2026Q4 (UTC still says 30 September).
	{"2026-09-30T22:30:00Z", chipB, "evt-b", "balie-b", "kiosk-2", true, "", "saved"},
	// 2026-10-25 00:30 (CEST) and 23:30 (CET): one Brussels day of 25 hours.
	{"2026-10-24T22:30:00Z", chipC, "evt-a", "balie-a", "kiosk-1", true, "", "saved"},
	{"2026-10-25T22:30:00Z", chipC, "evt-a", "balie-a", "kiosk-1", true, "", "maximum-reached"},
	// 2026-12-31 in Brussels.
	{"2026-12-31T20:00:00Z", chipBlocked, "evt-a", "balie-a", "kiosk-1", true, "", "card-blocked"},
	{"2026-12-31T21:00:00Z", chipUnknown, "evt-b", "balie-b", "kiosk-2", true, "", "passholder-not-found"},
	{"2026-12-31T22:30:00Z", chipA, "evt-a", "balie-a", "kiosk-1", true, "", "saved"},
	// 2027-01-01 in Brussels, 2026-12-31 in UTC: 2027Q1. The ingest's DAY is
	// Brussels' too, so chipA saves again.
	{"2026-12-31T23:30:00Z", chipA, "evt-a", "balie-a", "kiosk-1", true, "", "saved"},
	{"2026-12-31T23:40:00Z", chipA, "evt-a", "balie-a", "kiosk-1", true, "", "maximum-reached"},
	{"2026-12-31T23:45:00Z", chipB, "evt-b", "balie-b", "kiosk-2", true, "", "saved"},
	{"2027-01-01T10:00:00Z", chipC, "evt-gone", "balie-b", "kiosk-2", true, "", "event-not-found"},
	// No chip number at all: booked as sent, counted, in a part of its own.
	{"2027-01-01T11:00:00Z", "", "evt-b", "balie-b", "kiosk-2", true, "", "invalid-request"},
	// An unsynchronised clock (1970): dated by the receipt, 2027-01-01 01:10
	// in Brussels. The booked time decides, not tappedAt.
	{"1970-01-01T00:00:05Z", chipC, "evt-b", "balie-b", "kiosk-3", false, "2027-01-01T00:10:00Z", "saved"},
}

// book opens a ledger at dsn with the fixture's events and passholders and
// books the fixture, one checkin per batch, checking each status; the last
// checkin is sent twice (a replay is not counted again).
func book(t *testing.T, dsn string) *ingest.Ledger {
	t.Helper()
	ctx := context.Background()
	l := openLedger(t, dsn)
	evtA := ingest.Event{ID: "evt-a", Points: 1, Period: protocol.PeriodDay, Volume: 1}
	evtB := ingest.Event{ID: "evt-b", Points: 2, Period: protocol.PeriodDay, Volume: 1}
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // before every tap
	for _, a := range []struct {
		device, counter string
		e               ingest.Event
	}{{"kiosk-1", "balie-a", evtA}, {"kiosk-2", "balie-b", evtB}, {"kiosk-3", "balie-b", evtB}} {
		if _, err := l.AssignEvent(ctx, a.device, a.counter, a.e, since); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{chipA, chipB, chipC} {
		if err := l.Enroll(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SetBlocked(ctx, chipBlocked, true); err != nil {
		t.Fatal(err)
	}
	var last protocol.Checkin
	var lastAt time.Time
	for i, tp := range fixture {
		at, err := protocol.ParseTime(tp.at)
		if err != nil {
			t.Fatal(err)
		}
		rcv := at.Add(time.Second)
		if tp.receivedAt != "" {
			if rcv, err = protocol.ParseTime(tp.receivedAt); err != nil {
				t.Fatal(err)
			}
		}
		c := protocol.Checkin{V: 1, ID: uuid.Must(uuid.NewV7()).String(), DeviceID: tp.kiosk, Seq: int64(i + 1),
			ChipNumber: tp.chip, EventID: tp.event, CounterID: tp.counter, TappedAt: protocol.FormatTime(at),
			ClockSynced: tp.synced, BootID: "boot-1", UptimeMs: 1000}
		rs, err := l.Process(ctx, []protocol.Checkin{c}, rcv)
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Status != tp.want {
			t.Fatalf("fixture tap %d (%s %s): %s, want %s", i, tp.at, tp.chip, rs[0].Status, tp.want)
		}
		last, lastAt = c, rcv
	}
	if _, err := l.Process(ctx, []protocol.Checkin{last}, lastAt.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return l
}

// counts is a row's figures in column order after the key: checkins,
// saved, points, passholders, then the refusals in Refusals' order.
type counts [10]int64

func (r Row) counts() counts {
	c := counts{r.Checkins, r.Saved, r.Points, r.Passholders}
	for i, s := range Refusals() {
		c[4+i] = r.Refused[s]
	}
	return c
}

func rowsOf(t *testing.T, tb *Table) map[string]counts {
	t.Helper()
	m := map[string]counts{}
	for _, r := range tb.Rows {
		m[strings.Join(r.Key.values(tb.Query.By), "/")] = r.counts()
	}
	return m
}

func check(t *testing.T, r *Reader, q Query, want map[string]counts) *Table {
	t.Helper()
	tb, err := r.Run(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	got := rowsOf(t, tb)
	if len(got) != len(want) {
		t.Errorf("%+v: groups %v, want %v", q, got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("by %s %s: %v, want %v (checkins, saved, points, passholders, %s)", q.By, k, got[k], w,
				strings.Join(Refusals(), ", "))
		}
	}
	return tb
}

func TestReport(t *testing.T) { eachBackend(t, testReport) }

func testReport(t *testing.T, dsn func(testing.TB) string) {
	l := book(t, dsn(t))
	r := openReader(t, l)
	//                          checkins saved points holders max blocked notfound notallowed noevent invalid
	check(t, r, Query{By: ByDay}, map[string]counts{
		"2026-09-30": {1, 1, 1, 1},
		"2026-10-01": {1, 1, 2, 1},
		"2026-10-25": {2, 1, 1, 1, 1},
		"2026-12-31": {3, 1, 1, 1, 0, 1, 1},
		"2027-01-01": {6, 3, 5, 3, 1, 0, 0, 0, 1, 1},
	})
	// In UTC the days split otherwise: the three taps after 23:00Z on 31
	// December are on the 31st, the unsynced one on 1 January.
	check(t, r, Query{By: ByDay, Location: time.UTC}, map[string]counts{
		"2026-09-30": {2, 2, 3, 2},
		"2026-10-24": {1, 1, 1, 1},
		"2026-10-25": {1, 0, 0, 0, 1},
		"2026-12-31": {6, 3, 4, 2, 1, 1, 1},
		"2027-01-01": {3, 1, 2, 1, 0, 0, 0, 0, 1, 1},
	})
	check(t, r, Query{By: ByCounter}, map[string]counts{
		"balie-a": {7, 4, 4, 2, 2, 1},
		"balie-b": {6, 3, 6, 2, 0, 0, 1, 0, 1, 1},
	})
	check(t, r, Query{By: ByEvent}, map[string]counts{
		"evt-a":    {7, 4, 4, 2, 2, 1},
		"evt-b":    {5, 3, 6, 2, 0, 0, 1, 0, 0, 1},
		"evt-gone": {1, 0, 0, 0, 0, 0, 0, 0, 1},
	})
	check(t, r, Query{By: ByDevice}, map[string]counts{
		"kiosk-1": {7, 4, 4, 2, 2, 1},
		"kiosk-2": {5, 2, 4, 1, 0, 0, 1, 0, 1, 1},
		"kiosk-3": {1, 1, 2, 1},
	})
	// From and To are Brussels days, both included.
	check(t, r, Query{By: ByDay, From: Date{2026, 12, 31}, To: Date{2026, 12, 31}}, map[string]counts{
		"2026-12-31": {3, 1, 1, 1, 0, 1, 1},
	})
	check(t, r, Query{By: ByCounter, From: Date{2027, 1, 1}}, map[string]counts{
		"balie-a": {2, 1, 1, 1, 1},
		"balie-b": {4, 2, 4, 2, 0, 0, 0, 0, 1, 1},
	})
	check(t, r, Query{By: ByCounter, To: Date{2026, 10, 1}}, map[string]counts{
		"balie-a": {1, 1, 1, 1},
		"balie-b": {1, 1, 2, 1},
	})
	check(t, r, Query{By: ByDay, From: Date{2026, 10, 25}, To: Date{2026, 10, 25}}, map[string]counts{
		"2026-10-25": {2, 1, 1, 1, 1},
	})
	// The quarters: 2026-09-30T22:30Z is in Q4, 2026-12-31T23:30Z in 2027Q1.
	q4 := check(t, r, Query{By: ByCounterEvent, Quarter: Quarter{2026, 4}}, map[string]counts{
		"balie-a/evt-a": {4, 2, 2, 2, 1, 1},
		"balie-b/evt-b": {2, 1, 2, 1, 0, 0, 1},
	})
	if q4.Query.From != (Date{2026, 10, 1}) || q4.Query.To != (Date{2026, 12, 31}) {
		t.Errorf("2026Q4 runs %s to %s", q4.Query.From, q4.Query.To)
	}
	check(t, r, Query{By: ByCounterEvent, Quarter: Quarter{2027, 1}}, map[string]counts{
		"balie-a/evt-a":    {2, 1, 1, 1, 1},
		"balie-b/evt-b":    {3, 2, 4, 2, 0, 0, 0, 0, 0, 1},
		"balie-b/evt-gone": {1, 0, 0, 0, 0, 0, 0, 0, 1},
	})
	check(t, r, Query{By: ByDay, Quarter: Quarter{2026, 3}}, map[string]counts{
		"2026-09-30": {1, 1, 1, 1},
	})
	check(t, r, Query{By: ByDay, Quarter: Quarter{2025, 1}}, map[string]counts{})
	check(t, r, Query{By: ByDevice, Quarter: Quarter{2025, 1}}, map[string]counts{})

	// The settlement export's exact bytes.
	var buf bytes.Buffer
	if err := q4.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	want := "quarter,counterId,eventId,checkins,saved,points,passholders,maximum-reached,card-blocked,passholder-not-found,checkin-not-allowed,event-not-found,invalid-request\n" +
		"2026Q4,balie-a,evt-a,4,2,2,2,1,1,0,0,0,0\n" +
		"2026Q4,balie-b,evt-b,2,1,2,1,0,0,1,0,0,0\n"
	if buf.String() != want {
		t.Errorf("2026Q4 CSV:\n%s\nwant:\n%s", buf.String(), want)
	}
	// Nothing a report writes carries a chip number.
	for _, q := range []Query{{By: ByDay}, {By: ByDevice}, {By: ByCounterEvent, Quarter: Quarter{2027, 1}}} {
		tb, err := r.Run(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		tb.WriteCSV(&out)
		tb.WriteJSON(&out)
		tb.WriteText(&out)
		for _, c := range []string{chipA, chipB, chipC, chipBlocked, chipUnknown} {
			if strings.Contains(out.String(), c) {
				t.Errorf("by %s: the output carries chip %s", q.By, c)
			}
		}
	}
}

// fakeLocal is a LocalSource with fixed counts.
type fakeLocal struct {
	got  Query
	from time.Time
	m    map[Key]map[string]int64
}

func (f *fakeLocal) LocalOutcomes(_ context.Context, q Query, from, until time.Time) (map[Key]map[string]int64, error) {
	f.got, f.from = q, from
	return f.m, nil
}

func TestLocalSource(t *testing.T) {
	l := book(t, backends[0].dsn(t))
	r := openReader(t, l)
	f := &fakeLocal{m: map[Key]map[string]int64{
		{DeviceID: "kiosk-1"}: {"already-saved": 3, "blocked": 1},
		{DeviceID: "kiosk-9"}: {"unreadable-card": 2},
	}}
	tb, err := r.Run(context.Background(), Query{By: ByDevice, From: Date{2026, 12, 1}, Local: f})
	if err != nil {
		t.Fatal(err)
	}
	brussels, _ := time.LoadLocation("Europe/Brussels")
	if !f.from.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, brussels)) || f.got.By != ByDevice {
		t.Errorf("LocalOutcomes got %+v from %v", f.got, f.from)
	}
	var buf bytes.Buffer
	if err := tb.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	want := "deviceId,checkins,saved,points,passholders,maximum-reached,card-blocked,passholder-not-found,checkin-not-allowed,event-not-found,invalid-request," +
		"local-already-saved,local-blocked,local-unreadable-card,local-no-event,local-queue-full,local-storage-error\n" +
		"kiosk-1,4,2,2,1,1,1,0,0,0,0,3,1,0,0,0,0\n" +
		"kiosk-2,4,1,2,1,0,0,1,0,1,1,0,0,0,0,0,0\n" +
		"kiosk-3,1,1,2,1,0,0,0,0,0,0,0,0,0,0,0,0\n" +
		"kiosk-9,0,0,0,0,0,0,0,0,0,0,0,0,2,0,0,0\n"
	if buf.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestOutputs(t *testing.T) {
	l := book(t, backends[0].dsn(t))
	r := openReader(t, l)
	tb, err := r.Run(context.Background(), Query{By: ByDay, From: Date{2026, 12, 31}, To: Date{2027, 1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tb.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		By, TimeZone, From, To string
		Columns                []string
		Rows                   []map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if doc.By != "day" || doc.TimeZone != "Europe/Brussels" || doc.From != "2026-12-31" || doc.To != "2027-01-01" ||
		len(doc.Rows) != 2 || doc.Rows[1]["day"] != "2027-01-01" || doc.Rows[1]["saved"] != 3.0 ||
		doc.Rows[1]["passholders"] != 3.0 || doc.Rows[0]["card-blocked"] != 1.0 || len(doc.Columns) != 11 {
		t.Errorf("JSON: %s", buf.String())
	}
	buf.Reset()
	if err := tb.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "2026-12-31 to 2027-01-01") || !strings.Contains(lines[0], "Europe/Brussels") ||
		!strings.HasPrefix(lines[1], "day ") || !strings.HasPrefix(lines[3], "2027-01-01  6 ") {
		t.Errorf("text:\n%s", buf.String())
	}
}

func TestQueryErrors(t *testing.T) {
	l := openLedger(t, backends[0].dsn(t))
	r := openReader(t, l)
	for _, q := range []Query{
		{},
		{By: "week"},
		{By: ByDay, From: Date{2026, 12, 2}, To: Date{2026, 12, 1}},
		{By: ByDay, From: Date{2026, 2, 30}},
		{By: ByCounterEvent, Quarter: Quarter{2026, 5}},
		{By: ByCounterEvent, Quarter: Quarter{2026, 4}, From: Date{2026, 10, 1}},
	} {
		if _, err := r.Run(context.Background(), q); !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "report: ") {
			t.Errorf("%+v: %v, want report: … ErrInvalid", q, err)
		}
	}
	for _, s := range []string{"2026", "2026Q0", "2026Q5", "26Q1", "2026-Q1", "Q1"} {
		if _, err := ParseQuarter(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseQuarter(%q) = %v", s, err)
		}
	}
	if q, err := ParseQuarter("2026q4"); err != nil || q != (Quarter{2026, 4}) || q.Last() != (Date{2026, 12, 31}) || q.First() != (Date{2026, 10, 1}) {
		t.Errorf("ParseQuarter(2026q4) = %v, %v", q, err)
	}
	if d, err := ParseDate("2026-12-31"); err != nil || d != (Date{2026, 12, 31}) {
		t.Errorf("ParseDate = %v, %v", d, err)
	}
	for _, s := range []string{"2026-12-32", "31/12/2026", ""} {
		if _, err := ParseDate(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDate(%q) = %v", s, err)
		}
	}
}

// TestOffsetExpr: the CASE gives Go's offset at each transition's edges.
func TestOffsetExpr(t *testing.T) {
	for _, zone := range []string{"Europe/Brussels", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		lo := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		hi := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		expr := offsetExpr(loc, lo, hi)
		for ms := lo; ms < hi; ms += 3_600_000 * 7 {
			for _, at := range []int64{ms, ms - 1} {
				_, off := time.UnixMilli(at).In(loc).Zone()
				if got := evalCase(t, expr, at); got != int64(off)*1000 {
					t.Fatalf("%s at %v: %d, want %d", zone, time.UnixMilli(at).UTC(), got, off*1000)
				}
			}
		}
	}
}

// evalCase evaluates offsetExpr's output for dated_ms = at.
func evalCase(t *testing.T, e string, at int64) int64 {
	for {
		e = strings.TrimSpace(e)
		if !strings.HasPrefix(e, "CASE WHEN dated_ms < ") {
			var n int64
			if _, err := fmtSscan(e, &n); err != nil {
				t.Fatalf("eval %q: %v", e, err)
			}
			return n
		}
		rest := strings.TrimSuffix(strings.TrimPrefix(e, "CASE WHEN dated_ms < "), " END")
		bound, rest, _ := strings.Cut(rest, " THEN ")
		thenPart, elsePart := splitElse(rest)
		var b int64
		fmtSscan(bound, &b)
		if at < b {
			e = thenPart
		} else {
			e = elsePart
		}
	}
}

// splitElse splits "X ELSE Y" at the ELSE of this level.
func splitElse(s string) (string, string) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "CASE "):
			depth++
		case strings.HasPrefix(s[i:], " END"):
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], " ELSE "):
			return s[:i], s[i+6:]
		}
	}
	return s, ""
}

func fmtSscan(s string, n *int64) (int, error) { return fmt.Sscan(s, n) }
