package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/protocol"
)

// reportLedger books three taps of one card at counter balie-x: 23:30 on
// 31 December 2026 in Brussels (22:30Z), 00:30 on 1 January 2027 in
// Brussels (23:30Z, the same UTC day), and a refused one just after.
func reportLedger(t *testing.T, db string) {
	t.Helper()
	ctx := context.Background()
	l, err := ingest.Open(db, ingest.DefaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.AssignEvent(ctx, "kiosk-rep-01", "balie-x", ingest.Event{ID: "evt-x", Points: 1, Period: protocol.PeriodDay, Volume: 1},
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	const chip = "042F51B2712380"
	if err := l.Enroll(ctx, chip); err != nil {
		t.Fatal(err)
	}
	for i, at := range []string{"2026-12-31T22:30:00Z", "2026-12-31T23:30:00Z", "2026-12-31T23:31:00Z"} {
		tt, _ := protocol.ParseTime(at)
		c := protocol.Checkin{V: 1, ID: uuid.Must(uuid.NewV7()).String(), DeviceID: "kiosk-rep-01", Seq: int64(i + 1),
			ChipNumber: chip, EventID: "evt-x", CounterID: "balie-x", TappedAt: at, ClockSynced: true}
		if _, err := l.Process(ctx, []protocol.Checkin{c}, tt.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReportCommand(t *testing.T) {
	for _, be := range []struct {
		name string
		dsn  func(t testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "l.db") }},
		{"postgres", pgDSN},
	} {
		t.Run(be.name, func(t *testing.T) {
			db := be.dsn(t)
			reportLedger(t, db)
			runOK := func(args ...string) string {
				t.Helper()
				var out, errb bytes.Buffer
				if code := run(context.Background(), append([]string{"report", "-db", db, "-local=false"}, args...), &out, &errb); code != 0 {
					t.Fatalf("report %q: exit %d: %s", args, code, errb.String())
				}
				return out.String()
			}
			got := runOK("-by", "day", "-format", "csv")
			want := "day,checkins,saved,points,passholders,maximum-reached,card-blocked,passholder-not-found,checkin-not-allowed,event-not-found,invalid-request\n" +
				"2026-12-31,1,1,1,1,0,0,0,0,0,0\n" +
				"2027-01-01,2,1,1,1,1,0,0,0,0,0\n"
			if got != want {
				t.Errorf("-by day:\n%s\nwant:\n%s", got, want)
			}
			if got := runOK("-by", "day", "-format", "csv", "-tz", "UTC"); !strings.Contains(got, "\n2026-12-31,3,2,2,1,1,") {
				t.Errorf("-by day -tz UTC:\n%s", got)
			}
			// The quarterly export is CSV by default; the tap at 23:30Z on
			// 31 December belongs to 2027Q1.
			if got := runOK("-quarter", "2026Q4"); got != "quarter,counterId,eventId,checkins,saved,points,passholders,maximum-reached,card-blocked,passholder-not-found,checkin-not-allowed,event-not-found,invalid-request\n"+
				"2026Q4,balie-x,evt-x,1,1,1,1,0,0,0,0,0,0\n" {
				t.Errorf("-quarter 2026Q4:\n%s", got)
			}
			if got := runOK("-quarter", "2027Q1", "-format", "table"); !strings.Contains(got, "2027Q1 (2027-01-01 to 2027-03-31)") ||
				!strings.Contains(got, "balie-x") {
				t.Errorf("-quarter 2027Q1 -format table:\n%s", got)
			}
			var doc struct{ Rows []map[string]any }
			if err := json.Unmarshal([]byte(runOK("-by", "counter", "-format", "json", "-from", "2027-01-01", "-to", "2027-01-01")), &doc); err != nil ||
				len(doc.Rows) != 1 || doc.Rows[0]["counterId"] != "balie-x" || doc.Rows[0]["checkins"] != 2.0 {
				t.Errorf("-by counter -format json: %+v %v", doc, err)
			}
			if got := runOK("-by", "device", "-to", "2026-12-31"); !strings.Contains(got, "kiosk-rep-01  1 ") {
				t.Errorf("-by device -to 2026-12-31:\n%s", got)
			}
		})
	}
}

func TestReportBadFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "l.db")
	reportLedger(t, db)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "-by is required"},
		{[]string{"report", "-by", "day"}, "-db is required"},
		{[]string{"report", "-by", "day", "-db", db + ".nope"}, "no such file"},
		{[]string{"report", "-db", db, "-by", "week"}, "-by"},
		{[]string{"report", "-db", db, "-by", "day", "-from", "2026-13-01"}, "-from"},
		{[]string{"report", "-db", db, "-by", "day", "-to", "31-12-2026"}, "-to"},
		{[]string{"report", "-db", db, "-by", "day", "-from", "2026-12-02", "-to", "2026-12-01"}, "before"},
		{[]string{"report", "-db", db, "-quarter", "2026Q5"}, "-quarter"},
		{[]string{"report", "-db", db, "-quarter", "2026Q4", "-from", "2026-10-01"}, "-quarter"},
		{[]string{"report", "-db", db, "-by", "day", "-tz", "Mars/Olympus"}, "-tz"},
		{[]string{"report", "-db", db, "-by", "day", "-format", "xml"}, "-format"},
		{[]string{"report", "-db", db, "-by", "day", "extra"}, "unexpected argument"},
	} {
		expectUsageError(t, tc.args, tc.want)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"report", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-quarter") {
		t.Errorf("report -h: %d %q", code, out.String())
	}
}

// The kiosk-local refusals come from the fleet registry's outcome history:
// a kiosk that refused two taps as already saved on 1 January (Brussels)
// shows them in its counter's row and on that day.
func TestReportLocalRefusals(t *testing.T) {
	db := filepath.Join(t.TempDir(), "l.db")
	reportLedger(t, db)
	l, err := ingest.Open(db, ingest.DefaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := fleet.Open(context.Background(), l.DB(), l.Dialect(), fleet.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		at     string
		counts map[string]int64
	}{
		{"2026-12-31T20:00:00Z", map[string]int64{"saved": 1}},
		{"2026-12-31T23:40:00Z", map[string]int64{"saved": 2, "already-saved": 2}}, // 00:40 on 1 January in Brussels
	} {
		at, _ := protocol.ParseTime(st.at)
		s := protocol.Status{V: 1, Online: true, DeviceID: "kiosk-rep-01", EventID: "evt-x", ClockSynced: true, At: st.at, Outcomes: st.counts}
		if _, err := reg.Apply(context.Background(), []fleet.Message{{Status: s, Raw: s.Encode(), ReceivedAt: at}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	out := func(args ...string) string {
		var o, e bytes.Buffer
		if code := run(context.Background(), append([]string{"report", "-db", db, "-format", "csv"}, args...), &o, &e); code != 0 {
			t.Fatalf("report %q: exit %d: %s", args, code, e.String())
		}
		return o.String()
	}
	if got := out("-by", "counter"); !strings.Contains(got, "\nbalie-x,3,2,2,1,1,0,0,0,0,0,2,0,0,0,0,0\n") {
		t.Errorf("-by counter:\n%s", got)
	}
	if got := out("-by", "day"); !strings.Contains(got, "\n2027-01-01,2,1,1,1,1,0,0,0,0,0,2,0,0,0,0,0\n") ||
		!strings.Contains(got, "\n2026-12-31,1,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0\n") {
		t.Errorf("-by day:\n%s", got)
	}
}
