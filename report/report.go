package report

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/uitpas/tap-kiosk/internal/sqlbind"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Brussels must resolve on a host without zoneinfo

	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/protocol"
)

// ErrInvalid is a query that cannot be run (a bad date, grouping or range).
var ErrInvalid = errors.New("invalid query")

// DefaultZone is the time zone whose days a report counts unless the query
// names another.
const DefaultZone = "Europe/Brussels"

// By is what a report groups by.
type By string

// The groupings.
const (
	ByCounter By = "counter" // the counter (balie) of the checkin's event: counterId
	ByEvent   By = "event"   // eventId
	ByDevice  By = "device"  // the kiosk: deviceId
	ByDay     By = "day"     // the local day of the booked tap time
	// ByCounterEvent is the settlement grouping of the quarterly export:
	// one row per (counterId, eventId).
	ByCounterEvent By = "counter,event"
)

// ParseBy reads a grouping: counter, event, device, day, or counter,event.
func ParseBy(s string) (By, error) {
	switch b := By(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "")); b {
	case ByCounter, ByEvent, ByDevice, ByDay, ByCounterEvent:
		return b, nil
	}
	return "", fmt.Errorf("report: group by %q (want counter, event, device, day or counter,event): %w", s, ErrInvalid)
}

// keyColumns are the grouping's key columns, as named in every output.
func (b By) keyColumns() []string {
	switch b {
	case ByCounter:
		return []string{"counterId"}
	case ByEvent:
		return []string{"eventId"}
	case ByDevice:
		return []string{"deviceId"}
	case ByDay:
		return []string{"day"}
	case ByCounterEvent:
		return []string{"counterId", "eventId"}
	}
	return nil
}

// Date is a calendar day, in the query's time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("report: date %q (want YYYY-MM-DD): %w", s, ErrInvalid)
	}
	return DateOf(t), nil
}

// DateOf is the calendar day of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// IsZero reports an unset date (an open bound).
func (d Date) IsZero() bool { return d == Date{} }

func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// Start is the first instant of d in loc.
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

func (d Date) before(e Date) bool {
	return d.Start(time.UTC).Before(e.Start(time.UTC))
}

// next is the day after d.
func (d Date) next() Date { return DateOf(time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, time.UTC)) }

// Quarter is a calendar quarter, such as 2026Q4 (October to December 2026).
type Quarter struct {
	Year int
	Q    int // 1 to 4
}

// ParseQuarter reads YYYYQn (2026Q4; a lower-case q is accepted).
func ParseQuarter(s string) (Quarter, error) {
	y, q, ok := strings.Cut(strings.ToUpper(s), "Q")
	yn, err1 := strconv.Atoi(y)
	qn, err2 := strconv.Atoi(q)
	if !ok || len(y) != 4 || err1 != nil || err2 != nil || qn < 1 || qn > 4 {
		return Quarter{}, fmt.Errorf("report: quarter %q (want YYYYQn, such as 2026Q4): %w", s, ErrInvalid)
	}
	return Quarter{yn, qn}, nil
}

// IsZero reports an unset quarter.
func (q Quarter) IsZero() bool { return q == Quarter{} }

func (q Quarter) String() string {
	if q.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04dQ%d", q.Year, q.Q)
}

// First is the quarter's first day.
func (q Quarter) First() Date { return Date{q.Year, time.Month(3*q.Q - 2), 1} }

// Last is the quarter's last day.
func (q Quarter) Last() Date {
	return DateOf(time.Date(q.Year, time.Month(3*q.Q+1), 0, 0, 0, 0, 0, time.UTC))
}

// Query is one report.
type Query struct {
	By By
	// From and To bound the report to days in Location, both included
	// (To is the last day counted); a zero Date is open.
	From, To Date
	// Quarter, when set, is the range (its first to its last day); From and
	// To must then be zero.
	Quarter Quarter
	// Location is the time zone whose days are counted; nil is
	// Europe/Brussels.
	Location *time.Location
	// Local, when set, supplies the kiosk-local refusals (taps a kiosk
	// refused itself, which central never sees as checkins): each row then
	// has Local counts and the outputs their local-… columns.
	Local LocalSource
}

// LocalSource is the seam for the kiosk-local refusals, the outcomes counted
// by each kiosk and reported in its Status (`outcomes`, counts since the
// queue was created). The fleet registry keeps those counts; to report them
// per group and range it needs their history (the counts at least at each
// day's start, or every Status received), per device with the event and
// counter the kiosk was serving, so that differences give the taps of a
// range.
type LocalSource interface {
	// LocalOutcomes returns, per group of q.By (a Key as in Row, only the
	// grouping's fields set; Day as YYYY-MM-DD), the number of taps refused
	// at the kiosk in [from, until), by outcome (LocalOutcomes: already-saved,
	// blocked, …). A zero from or until is open.
	LocalOutcomes(ctx context.Context, q Query, from, until time.Time) (map[Key]map[string]int64, error)
}

// Refusals are the central statuses other than saved that the ledger
// records, in the order of the outputs' columns.
func Refusals() []string {
	return []string{protocol.StatusMaximumReached, protocol.StatusCardBlocked, protocol.StatusPassholderNotFound,
		protocol.StatusCheckinNotAllowed, protocol.StatusEventNotFound, protocol.StatusInvalidRequest}
}

// LocalOutcomes are the tap outcomes a kiosk decides without central and
// does not queue (interfaces.md), in the order of the local-… columns.
func LocalOutcomes() []string {
	return []string{"already-saved", "blocked", "unreadable-card", "no-event", "queue-full", "storage-error"}
}

// Key is a group: the fields of the query's grouping are set, the others
// empty.
type Key struct {
	CounterID, EventID, DeviceID string
	Day                          string // YYYY-MM-DD in the query's zone
}

func (k Key) values(b By) []string {
	switch b {
	case ByCounter:
		return []string{k.CounterID}
	case ByEvent:
		return []string{k.EventID}
	case ByDevice:
		return []string{k.DeviceID}
	case ByDay:
		return []string{k.Day}
	case ByCounterEvent:
		return []string{k.CounterID, k.EventID}
	}
	return nil
}

// Row is one group's figures.
type Row struct {
	Key Key
	// Checkins is every checkin central answered in the group, whatever the
	// status (one per checkin id: replays are not counted again).
	Checkins int64
	// Saved is the checkins answered saved; Points the points they booked.
	Saved, Points int64
	// Passholders is the number of distinct cards with a saved checkin in
	// the group (a count: the report never carries a chip number).
	Passholders int64
	// Refused is the checkins answered with each refusal status (Refusals);
	// every status is present, zero or not.
	Refused map[string]int64
	// Local is the kiosk-local refusals by outcome (LocalOutcomes), when the
	// query has a LocalSource; nil otherwise.
	Local map[string]int64
}

// Table is a report's result: its query as run (Location set; From and To
// the quarter's days when Quarter is set) and its rows, sorted by key.
type Table struct {
	Query Query
	Rows  []Row
}

// Reader runs reports on one ledger through a read-only handle of its own.
type Reader struct {
	db       *sql.DB
	postgres bool
	// parity is the condition that a row's card is in part %d of two.
	parity string
}

// Open opens a Reader on l (l.ReadOnly). Close it when done; l may be
// closed first.
func Open(l *ingest.Ledger) (*Reader, error) {
	db, err := l.ReadOnly()
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r := &Reader{db: db, postgres: l.Dialect() == "postgres",
		// Every chip in its part: an empty or odd one (an invalid-request
		// row keeps what the kiosk sent) counts as 0.
		parity: "coalesce(unicode(substr(chip_number, -1)), 0) %% 2 = %d"}
	if r.postgres {
		r.parity = "coalesce(ascii(right(chip_number, 1)), 0) %% 2 = %d"
	}
	return r, nil
}

// Close closes the Reader's handle.
func (r *Reader) Close() error {
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("report: close: %w", err)
	}
	return nil
}

// Run is one report on l: Open, Reader.Run, Close.
func Run(ctx context.Context, l *ingest.Ledger, q Query) (*Table, error) {
	r, err := Open(l)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Run(ctx, q)
}

// resolve checks q and fills in its defaults; from and until are the
// range's instants (until excluded), zero when open.
func (q Query) resolve() (Query, time.Time, time.Time, error) {
	if _, err := ParseBy(string(q.By)); err != nil {
		return q, time.Time{}, time.Time{}, err
	}
	if q.Location == nil {
		loc, err := time.LoadLocation(DefaultZone)
		if err != nil {
			return q, time.Time{}, time.Time{}, fmt.Errorf("report: time zone %s: %w", DefaultZone, err)
		}
		q.Location = loc
	}
	if !q.Quarter.IsZero() {
		if !q.From.IsZero() || !q.To.IsZero() {
			return q, time.Time{}, time.Time{}, fmt.Errorf("report: a quarter and a from/to range together: %w", ErrInvalid)
		}
		if _, err := ParseQuarter(q.Quarter.String()); err != nil {
			return q, time.Time{}, time.Time{}, err
		}
		q.From, q.To = q.Quarter.First(), q.Quarter.Last()
	}
	for _, d := range []Date{q.From, q.To} {
		if !d.IsZero() && DateOf(d.Start(time.UTC)) != d {
			return q, time.Time{}, time.Time{}, fmt.Errorf("report: date %d-%d-%d: %w", d.Year, d.Month, d.Day, ErrInvalid)
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.before(q.From) {
		return q, time.Time{}, time.Time{}, fmt.Errorf("report: to %s before from %s: %w", q.To, q.From, ErrInvalid)
	}
	var from, until time.Time
	if !q.From.IsZero() {
		from = q.From.Start(q.Location)
	}
	if !q.To.IsZero() {
		until = q.To.next().Start(q.Location)
	}
	return q, from, until, nil
}

// Run computes q over the ledger: one set-based aggregate, run at once on
// the two halves of the cards (see partitions) and added up.
func (r *Reader) Run(ctx context.Context, q Query) (*Table, error) {
	q, from, until, err := q.resolve()
	if err != nil {
		return nil, err
	}
	t := &Table{Query: q}
	var where []string
	var args []any
	if !from.IsZero() {
		where = append(where, "dated_ms >= ?")
		args = append(args, from.UnixMilli())
	}
	if !until.IsZero() {
		where = append(where, "dated_ms < ?")
		args = append(args, until.UnixMilli())
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var keys []string
	switch q.By {
	case ByCounter:
		keys = []string{"counter_id"}
	case ByEvent:
		keys = []string{"event_id"}
	case ByDevice:
		keys = []string{"device_id"}
	case ByCounterEvent:
		keys = []string{"counter_id", "event_id"}
	case ByDay:
		lo, hi, ok, err := r.span(ctx, cond, args, from, until)
		if err != nil {
			return nil, err
		}
		if !ok { // no checkin in the range
			return r.addLocal(ctx, t, from, until)
		}
		keys = []string{"(dated_ms + " + offsetExpr(q.Location, lo, hi) + ") / 86400000"}
	}
	src := " FROM checkins"
	if !r.postgres {
		// SQLite's planner, without statistics, may scan the table (four
		// times the bytes) rather than the covering index.
		src += " INDEXED BY checkins_report"
	}
	// The cards are split in parts by the parity of their chip number's
	// last character, and each part is aggregated on a connection of its
	// own, at once: each sorts half the rows (SQLite has no hash aggregate,
	// and PostgreSQL does not parallelise a DISTINCT aggregate), and since
	// a card is in one part only, its counts and distinct cards add up.
	parts := make([][]Row, partitions)
	errs := make([]error, partitions)
	var wg sync.WaitGroup
	for p := range partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cond + " AND "
			if cond == "" {
				c = " WHERE "
			}
			c += fmt.Sprintf(r.parity, p)
			parts[p], errs[p] = r.aggregate(ctx, q.By, keys, src+c, args)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	idx := map[Key]int{}
	for _, part := range parts {
		for _, row := range part {
			i, ok := idx[row.Key]
			if !ok {
				idx[row.Key] = len(t.Rows)
				t.Rows = append(t.Rows, row)
				continue
			}
			m := &t.Rows[i]
			m.Checkins += row.Checkins
			m.Saved += row.Saved
			m.Points += row.Points
			m.Passholders += row.Passholders
			for s, n := range row.Refused {
				m.Refused[s] += n
			}
		}
	}
	return r.addLocal(ctx, t, from, until)
}

// partitions is how many parts of the cards a report aggregates at once:
// the cores of the machine it was measured on, and ReadOnly's connections.
const partitions = 2

// aggregate runs the statement of keys over src (FROM and WHERE) and reads
// its rows.
func (r *Reader) aggregate(ctx context.Context, by By, keys []string, src string, args []any) ([]Row, error) {
	rows, err := r.db.QueryContext(ctx, r.bind(aggregate(keys, src, r.postgres)), args...)
	if err != nil {
		return nil, fmt.Errorf("report: by %s: %w", by, err)
	}
	defer rows.Close()
	refusals := Refusals()
	var out []Row
	for rows.Next() {
		var row Row
		var k1, k2 string
		var dayNum int64
		dest := []any{&k1}
		switch {
		case by == ByDay:
			dest = []any{&dayNum}
		case len(keys) == 2:
			dest = append(dest, &k2)
		}
		dest = append(dest, &row.Checkins, &row.Saved, &row.Points, &row.Passholders)
		ref := make([]int64, len(refusals))
		for i := range ref {
			dest = append(dest, &ref[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("report: by %s: %w", by, err)
		}
		switch by {
		case ByCounter:
			row.Key.CounterID = k1
		case ByEvent:
			row.Key.EventID = k1
		case ByDevice:
			row.Key.DeviceID = k1
		case ByCounterEvent:
			row.Key.CounterID, row.Key.EventID = k1, k2
		case ByDay:
			row.Key.Day = time.Unix(dayNum*86400, 0).UTC().Format(time.DateOnly)
		}
		row.Refused = make(map[string]int64, len(refusals))
		for i, s := range refusals {
			row.Refused[s] = ref[i]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: by %s: %w", by, err)
	}
	return out, nil
}

// aggregate is the report's one statement: per group, the counts by status
// and the distinct cards that saved, in one scan of the range (which the
// covering index checkins_report serves without reading the table).
func aggregate(keys []string, from string, postgres bool) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, k := range keys {
		fmt.Fprintf(&b, "%s AS k%d, ", k, i)
	}
	// The statuses are the protocol's constants (no quote in them).
	chip := "chip_number"
	if postgres {
		chip += ` COLLATE "C"` // bytewise: the sort of the distinct cards is the cost
	}
	b.WriteString("count(*), sum(CASE WHEN status = '" + protocol.StatusSaved + "' THEN 1 ELSE 0 END), coalesce(sum(points), 0), " +
		"count(DISTINCT CASE WHEN status = '" + protocol.StatusSaved + "' THEN " + chip + " END)")
	for _, s := range Refusals() {
		b.WriteString(", sum(CASE WHEN status = '" + s + "' THEN 1 ELSE 0 END)")
	}
	b.WriteString(from + " GROUP BY ")
	for i := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d", i+1)
	}
	return b.String()
}

// span is the range of dated_ms that the day grouping must know the zone's
// offsets for: the query's bounds, or the ledger's first and last booked
// tap where they are open. ok is false when no checkin is in the range.
func (r *Reader) span(ctx context.Context, cond string, args []any, from, until time.Time) (lo, hi int64, ok bool, err error) {
	var mn, mx sql.NullInt64
	if err := r.db.QueryRowContext(ctx, r.bind("SELECT min(dated_ms), max(dated_ms) FROM checkins"+cond), args...).Scan(&mn, &mx); err != nil {
		return 0, 0, false, fmt.Errorf("report: range: %w", err)
	}
	if !mn.Valid {
		return 0, 0, false, nil
	}
	lo, hi = mn.Int64, mx.Int64
	if !from.IsZero() {
		lo = from.UnixMilli()
	}
	if !until.IsZero() {
		hi = until.UnixMilli()
	}
	return lo, hi, true, nil
}

// offsetExpr is an SQL expression for loc's UTC offset in milliseconds at
// the instant dated_ms, right for every instant in [lo, hi]: the zone's
// transitions in that span (from Go's zone database), as a balanced CASE so
// that a row costs log2(transitions) comparisons.
func offsetExpr(loc *time.Location, lo, hi int64) string {
	t := time.UnixMilli(lo).In(loc)
	_, off := t.Zone()
	offs := []int64{int64(off) * 1000}
	var bounds []int64
	for i := 0; i < 100000; i++ {
		_, end := t.ZoneBounds()
		if end.IsZero() || end.UnixMilli() > hi {
			break
		}
		t = end.In(loc)
		_, off = t.Zone()
		if int64(off)*1000 == offs[len(offs)-1] { // a new name, the same offset
			continue
		}
		bounds = append(bounds, end.UnixMilli())
		offs = append(offs, int64(off)*1000)
	}
	return caseOf(bounds, offs)
}

// caseOf picks offs[i] for dated_ms in [bounds[i-1], bounds[i]).
func caseOf(bounds, offs []int64) string {
	if len(bounds) == 0 {
		return strconv.FormatInt(offs[0], 10)
	}
	m := len(bounds) / 2
	return "CASE WHEN dated_ms < " + strconv.FormatInt(bounds[m], 10) + " THEN " + caseOf(bounds[:m], offs[:m+1]) +
		" ELSE " + caseOf(bounds[m+1:], offs[m+1:]) + " END"
}

// bind numbers the ? placeholders for PostgreSQL; the statements have no ?
// inside literals.
func (r *Reader) bind(q string) string {
	if !r.postgres {
		return q
	}
	return sqlbind.Dollar(q)
}

// addLocal merges the LocalSource's counts into t (rows for groups with only
// local refusals included) and sorts the rows by key.
func (r *Reader) addLocal(ctx context.Context, t *Table, from, until time.Time) (*Table, error) {
	q := t.Query
	if q.Local != nil {
		local, err := q.Local.LocalOutcomes(ctx, q, from, until)
		if err != nil {
			return nil, fmt.Errorf("report: kiosk-local outcomes: %w", err)
		}
		idx := make(map[Key]int, len(t.Rows))
		for i := range t.Rows {
			idx[t.Rows[i].Key] = i
		}
		for k, counts := range local {
			i, ok := idx[k]
			if !ok {
				ref := make(map[string]int64)
				for _, s := range Refusals() {
					ref[s] = 0
				}
				t.Rows = append(t.Rows, Row{Key: k, Refused: ref})
				i = len(t.Rows) - 1
				idx[k] = i
			}
			t.Rows[i].Local = counts
		}
		for i := range t.Rows {
			m := make(map[string]int64, len(LocalOutcomes()))
			for _, o := range LocalOutcomes() {
				m[o] = t.Rows[i].Local[o]
			}
			t.Rows[i].Local = m
		}
	}
	sort.Slice(t.Rows, func(i, j int) bool {
		a, b := t.Rows[i].Key.values(q.By), t.Rows[j].Key.values(q.By)
		for n := range a {
			if a[n] != b[n] {
				return a[n] < b[n]
			}
		}
		return false
	})
	return t, nil
}
