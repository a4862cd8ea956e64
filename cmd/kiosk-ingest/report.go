package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/report"
)

func runReport(ctx context.Context, args []string, stdout io.Writer) error {
	var db, by, from, to, quarter, tz, format string
	fs := newFlagSet(name+" report", stdout, `Usage:
  kiosk-ingest report -db FILE|postgres://… -by counter|event|device|day [-from DATE] [-to DATE] [-tz ZONE] [-format table|csv|json]
  kiosk-ingest report -db FILE|postgres://… -quarter 2026Q4 [-by …] [-format csv|table|json]

Statistics over the ledger, one row per group: checkins (every checkin central
answered), saved, points, passholders (distinct cards with a saved checkin: a
count, never a chip number), then the refusals by central status
(maximum-reached, card-blocked, passholder-not-found, checkin-not-allowed,
event-not-found, invalid-request).

Days are calendar days in -tz (Europe/Brussels), not UTC, of the booked tap
time: the kiosk's tappedAt as central accepted it (the ledger's datedAt; for a
kiosk whose clock was not synchronised, central's estimate). -from and -to are
such days, both included.

-quarter YYYYQn is the quarterly settlement export: the quarter's days, one row
per counter and event (unless -by says otherwise), CSV with a first column
"quarter".

Flags:
`)
	fs.StringVar(&db, "db", "", "ledger: SQLite `FILE` or postgres:// URL")
	fs.StringVar(&by, "by", "", "group by `what`: counter, event, device, day, or counter,event")
	fs.StringVar(&from, "from", "", "first `day` counted, YYYY-MM-DD in -tz (default: the first checkin)")
	fs.StringVar(&to, "to", "", "last `day` counted (included), YYYY-MM-DD in -tz (default: the last checkin)")
	fs.StringVar(&quarter, "quarter", "", "the quarterly export of `YYYYQn` (2026Q4: 1 October to 31 December), per counter and event")
	fs.StringVar(&tz, "tz", report.DefaultZone, "time `zone` of the days (IANA name)")
	fs.StringVar(&format, "format", "", "table, csv or json (default: table; csv with -quarter)")
	local := fs.Bool("local", true, "add the kiosk-local refusals (local-… columns) from the fleet registry's outcome history")
	if err := parse(fs, args); err != nil {
		return err
	}
	var q report.Query
	var err error
	switch {
	case by != "":
		if q.By, err = report.ParseBy(by); err != nil {
			return usagef("report: -by %q: want counter, event, device, day or counter,event", by)
		}
	case quarter != "":
		q.By = report.ByCounterEvent
	default:
		return usagef("report: -by is required (see report -h)")
	}
	if quarter != "" {
		if from != "" || to != "" {
			return usagef("report: -quarter and -from/-to go alone")
		}
		if q.Quarter, err = report.ParseQuarter(quarter); err != nil {
			return usagef("report: -quarter %q: want YYYYQn, such as 2026Q4", quarter)
		}
	}
	for _, d := range []struct {
		flag, val string
		dst       *report.Date
	}{{"-from", from, &q.From}, {"-to", to, &q.To}} {
		if d.val == "" {
			continue
		}
		if *d.dst, err = report.ParseDate(d.val); err != nil {
			return usagef("report: %s %q: want a day YYYY-MM-DD", d.flag, d.val)
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Start(time.UTC).Before(q.From.Start(time.UTC)) {
		return usagef("report: -to %s is before -from %s", q.To, q.From)
	}
	if q.Location, err = time.LoadLocation(tz); err != nil || tz == "" || strings.EqualFold(tz, "local") {
		return usagef("report: -tz %q: want an IANA time zone such as Europe/Brussels", tz)
	}
	if format == "" {
		format = "table"
		if quarter != "" {
			format = "csv"
		}
	}
	var write func(*report.Table, io.Writer) error
	switch format {
	case "table":
		write = (*report.Table).WriteText
	case "csv":
		write = (*report.Table).WriteCSV
	case "json":
		write = (*report.Table).WriteJSON
	default:
		return usagef("report: -format %q: want table, csv or json", format)
	}
	l, err := openExisting("report", db)
	if err != nil {
		return err
	}
	defer l.Close()
	if *local {
		reg, err := fleet.Open(ctx, l.DB(), l.Dialect(), fleet.Opts{})
		if err != nil {
			return err
		}
		q.Local = report.FleetLocal{Registry: reg, Ledger: l}
	}
	t, err := report.Run(ctx, l, q)
	if errors.Is(err, report.ErrInvalid) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	return write(t, stdout)
}
