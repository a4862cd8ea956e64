package ingest

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // Europe/Brussels must resolve on a host without zoneinfo

	"github.com/uitpas/tap-kiosk/protocol"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid value")
)

// Event is what the ledger needs to know of an activity.
type Event struct {
	ID     string
	Points int
	// Period and Volume are the check-in constraint: Volume check-ins per
	// Period (protocol.PeriodDay, …).
	Period string
	Volume int
	// ValidFrom and ValidUntil bound the check-in window; zero is open.
	ValidFrom, ValidUntil time.Time
}

func (e Event) check() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("ingest: event id empty: %w", ErrInvalid)
	case !protocol.ValidPeriod(e.Period):
		return fmt.Errorf("ingest: event %s: period %q: %w", e.ID, e.Period, ErrInvalid)
	case e.Volume < 1:
		return fmt.Errorf("ingest: event %s: volume %d: %w", e.ID, e.Volume, ErrInvalid)
	case e.Points < 0:
		return fmt.Errorf("ingest: event %s: points %d: %w", e.ID, e.Points, ErrInvalid)
	case !e.ValidFrom.IsZero() && !e.ValidUntil.IsZero() && !e.ValidFrom.Before(e.ValidUntil):
		return fmt.Errorf("ingest: event %s: validFrom not before validUntil: %w", e.ID, ErrInvalid)
	}
	return nil
}

// Passholder is a card and its points.
type Passholder struct {
	ChipNumber  string
	TotalPoints int
	Blocked     bool
}

// Opts are the ledger's rules.
type Opts struct {
	// EnrollUnknown books unknown chips as new passholders and creates
	// unknown events from Default (demo); otherwise they are answered
	// passholder-not-found and event-not-found.
	EnrollUnknown bool
	// Default is the constraint and points of an auto-created event (its ID
	// is ignored).
	Default Event
	// Location is the calendar of the constraint periods.
	Location *time.Location
	// Synchronous is SQLite's synchronous pragma: "FULL" (default; every
	// committed batch is on disk, as a ledger of record must be) or "NORMAL".
	// On PostgreSQL, NORMAL sets synchronous_commit=off for the ledger's
	// sessions (FULL keeps the server's setting).
	Synchronous string
	// Logger gets the few things the ledger itself has to say.
	Logger *slog.Logger

	// The date bounds (zero: the default). A checkin dated more than MaxAge
	// (7 days) before its receipt, or a synced tappedAt more than Skew (5
	// min) after it, is refused checkin-not-allowed: a kiosk's queue holds
	// days, not weeks, and a clock far ahead is a broken or forged one. A
	// synced tappedAt within Skew after the receipt is dated at the receipt.
	MaxAge, Skew time.Duration
	// AssignMargin (5 min) is how long before an assignment was issued a tap
	// may be dated and still be booked under it (the clocks of the kiosk and
	// of the config signer differ); Handover (24 h) how long after a
	// device's next assignment was issued its previous one still books (see
	// Assignment).
	AssignMargin, Handover time.Duration
}

// DefaultOpts are the rules of the reference ingest: no enrolment, DAY/1/1
// for auto-created events, Brussels time, synchronous FULL.
func DefaultOpts() Opts {
	loc, err := time.LoadLocation("Europe/Brussels")
	if err != nil { // cannot happen with time/tzdata linked in
		loc = time.UTC
	}
	return Opts{
		Default:      Event{Period: protocol.PeriodDay, Volume: 1, Points: 1},
		Location:     loc,
		Synchronous:  "FULL",
		MaxAge:       7 * 24 * time.Hour,
		Skew:         5 * time.Minute,
		AssignMargin: 5 * time.Minute,
		Handover:     24 * time.Hour,
	}
}

// Ledger is the store of checkins, events and passholders, in SQLite or
// PostgreSQL. Its methods are safe for concurrent use. On SQLite it is meant
// to have one writer (Service batches into it); on PostgreSQL several
// Ledgers, in several processes, may write one database at once and keep the
// same guarantees (see the package doc).
type Ledger struct {
	db   *sql.DB
	d    *dialect
	path string
	o    Opts
	st   stmts
	pg   pgStmts // the set-based path's (PostgreSQL)
	ac   *assignCache
	calm atomic.Int64 // batches in a row that met no id answered before
	// lateCounts: set-based batches whose counts foresee missed, read in a
	// round trip of their own; firstPasses: those that ran the rules' first
	// pass after their reads (foresee's was not complete).
	lateCounts, firstPasses atomic.Int64
	// calmAfter is calmBatches (tests set 0: ids never read first).
	calmAfter int64
	an        *analyzer // PostgreSQL without autovacuum: ANALYZE as the tables grow
	// params lends each set-based batch its buffer for encoding its writes
	// (*params): a few batches run at once (dialect.writers), and each
	// buffer grows to a batch's size once.
	params sync.Pool
}

type stmts struct {
	selEvent, insDefaultEvent, selHolder, selHolderSaved, enroll, addPoints,
	insCheckin, selCheckin, upBoot, selBoot, lockChips, selAssign *sql.Stmt
}

// Open opens (creating if needed) the ledger and applies its migrations.
// dsn is a SQLite file path, or a postgres:// (postgresql://) URL for a
// PostgreSQL ledger, whose database must exist; the tables go in the
// connection's current schema (search_path=… in the URL chooses it).
func Open(dsn string, o Opts) (*Ledger, error) {
	d := DefaultOpts()
	if o.Location == nil {
		o.Location = d.Location
	}
	if o.Synchronous == "" {
		o.Synchronous = d.Synchronous
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range []struct{ v, def *time.Duration }{{&o.MaxAge, &d.MaxAge}, {&o.Skew, &d.Skew},
		{&o.AssignMargin, &d.AssignMargin}, {&o.Handover, &d.Handover}} {
		if *p.v < 0 {
			return nil, fmt.Errorf("ingest: negative date bound %v: %w", *p.v, ErrInvalid)
		}
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	o.Synchronous = strings.ToUpper(o.Synchronous)
	if o.Synchronous != "FULL" && o.Synchronous != "NORMAL" {
		return nil, fmt.Errorf("ingest: synchronous %q (want FULL or NORMAL): %w", o.Synchronous, ErrInvalid)
	}
	if o.EnrollUnknown {
		o.Default.ID = "default"
		if err := o.Default.check(); err != nil {
			return nil, fmt.Errorf("ingest: default event: %w", err)
		}
	}
	dia, open := sqliteDialect, openSQLite
	if IsPostgres(dsn) {
		dia, open = postgresDialect, openPostgres
	}
	db, err := open(dsn, o)
	if err != nil {
		return nil, err
	}
	l := &Ledger{db: db, d: dia, path: dsn, o: o}
	if err := l.migrateRetrying(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	if err := l.prepare(); err != nil {
		db.Close()
		return nil, err
	}
	if dia.setBased {
		if err := l.preparePG(); err != nil {
			db.Close()
			return nil, err
		}
		an, err := newAnalyzer(l)
		if err != nil {
			db.Close()
			return nil, err
		}
		l.an = an
	}
	return l, nil
}

// String names the ledger (without a database password).
func (l *Ledger) String() string { return "ingest.Ledger(" + redact(l.path) + ")" }

// Dialect is "sqlite" or "postgres".
func (l *Ledger) Dialect() string { return l.d.name }

// DB is the ledger's database, for a package that keeps tables of its own
// beside the ledger's (package fleet, with its own migrations). Dialect says
// which database it is.
func (l *Ledger) DB() *sql.DB { return l.db }

// exec runs a shared statement written with ? placeholders.
func (l *Ledger) exec(ctx context.Context, q string, args ...any) error {
	_, err := l.db.ExecContext(ctx, l.d.bind(q), args...)
	return err
}

// Close closes the database.
func (l *Ledger) Close() error {
	if l.an != nil {
		l.an.close()
	}
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("ingest: close: %w", err)
	}
	return nil
}

// migrateRetrying is migrate, tried again while SQLite answers busy. Several
// instances opening one new file at once race for its first locks: the
// switch to WAL and the first write transaction can return SQLITE_BUSY
// without the busy handler being called (seen as a rare "database is
// locked" when four instances start together). The migrations are
// idempotent, so trying again is safe.
func (l *Ledger) migrateRetrying(ctx context.Context) error {
	wait := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := l.migrate(ctx)
		if err == nil || !isBusy(err) || attempt == 8 {
			return err
		}
		l.o.Logger.Debug("ledger busy while migrating; trying again", "attempt", attempt, "err", err)
		time.Sleep(wait)
		wait *= 2
	}
}

// isBusy reports an SQLite "database is locked" (SQLITE_BUSY and its
// extended codes).
func isBusy(err error) bool {
	var c interface{ Code() int }
	return errors.As(err, &c) && c.Code()&0xff == 5
}

func (l *Ledger) migrate(ctx context.Context) error {
	err := l.migrationTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("ingest: migrate: %w", err)
	}
	names, err := fs.Glob(migrations, l.d.migrations)
	if err != nil {
		return fmt.Errorf("ingest: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := l.migrateOne(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// migrationTx runs fn in a transaction that holds the dialect's migration
// lock.
func (l *Ledger) migrationTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if l.d.migrateLock != "" {
		if _, err := tx.ExecContext(ctx, l.d.migrateLock); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (l *Ledger) migrateOne(ctx context.Context, name string) error {
	applied := false
	err := l.migrationTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, l.d.bind(`SELECT count(*) FROM schema_migrations WHERE version = ?`), name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, l.d.bind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
			name, protocol.FormatTime(time.Now())); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("ingest: migrate %s: %w", name, err)
	}
	if applied {
		l.o.Logger.Info("ledger migrated", "migration", name, "dialect", l.d.name)
	}
	return nil
}

func (l *Ledger) prepare() error {
	for _, p := range []struct {
		s   **sql.Stmt
		sql string
	}{
		{&l.st.selEvent, `SELECT points, period, volume, valid_from_ms, valid_until_ms FROM events WHERE id = ?`},
		{&l.st.insDefaultEvent, `INSERT INTO events (id, points, period, volume) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
		{&l.st.selHolder, `SELECT total_points, blocked FROM passholders WHERE chip_number = ?`},
		// One row always: the passholder's columns are NULL when there is none.
		{&l.st.selHolderSaved, `SELECT p.total_points, p.blocked, (SELECT count(*) FROM checkins
			WHERE chip_number = ? AND event_id = ? AND status = 'saved' AND dated_ms >= ? AND dated_ms < ?)
			FROM (SELECT 1 AS one) AS o LEFT JOIN passholders AS p ON p.chip_number = ?`},
		{&l.st.enroll, `INSERT INTO passholders (chip_number, total_points, blocked, created_at) VALUES (?, ?, false, ?)
			ON CONFLICT (chip_number) DO UPDATE SET total_points = passholders.total_points + excluded.total_points`},
		{&l.st.addPoints, `UPDATE passholders SET total_points = total_points + ? WHERE chip_number = ?`},
		{&l.st.insCheckin, `INSERT INTO checkins (id, device_id, seq, chip_number, event_id, counter_id, status, points,
			tapped_at, clock_synced, dated_ms, received_at, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`},
		{&l.st.selCheckin, `SELECT device_id, result FROM checkins WHERE id = ?`},
		{&l.st.upBoot, `INSERT INTO boots (device_id, boot_id, uptime_ms, received_ms) VALUES (?, ?, ?, ?)
			ON CONFLICT (device_id, boot_id) DO UPDATE SET uptime_ms = excluded.uptime_ms, received_ms = excluded.received_ms
			WHERE excluded.uptime_ms > boots.uptime_ms`},
		{&l.st.selBoot, `SELECT uptime_ms, received_ms FROM boots WHERE device_id = ? AND boot_id = ?`},
		{&l.st.lockChips, l.d.lockChips},
		{&l.st.selAssign, `SELECT device_id, serial, event_id, counter_id, points, period, volume, valid_from_ms,
			valid_until_ms, assigned_ms, replaced_ms FROM assignments WHERE device_id = ? AND event_id = ? ORDER BY serial DESC`},
	} {
		if p.sql == "" {
			continue
		}
		s, err := l.db.Prepare(l.d.bind(p.sql))
		if err != nil {
			return fmt.Errorf("ingest: prepare: %w", err)
		}
		*p.s = s
	}
	return nil
}

// UpsertEvent creates or replaces an event.
func (l *Ledger) UpsertEvent(ctx context.Context, e Event) error {
	if err := e.check(); err != nil {
		return err
	}
	err := l.exec(ctx, `INSERT INTO events (id, points, period, volume, valid_from_ms, valid_until_ms)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET points = excluded.points, period = excluded.period,
		volume = excluded.volume, valid_from_ms = excluded.valid_from_ms, valid_until_ms = excluded.valid_until_ms`,
		e.ID, e.Points, e.Period, e.Volume, nullMs(e.ValidFrom), nullMs(e.ValidUntil))
	if err != nil {
		return fmt.Errorf("ingest: upsert event %s: %w", e.ID, err)
	}
	return nil
}

// Event returns the event id, or ErrNotFound.
func (l *Ledger) Event(ctx context.Context, id string) (Event, error) {
	e, ok, err := l.event(ctx, l.st.selEvent, id)
	if err != nil {
		return Event{}, err
	}
	if !ok {
		return Event{}, fmt.Errorf("ingest: event %s: %w", id, ErrNotFound)
	}
	return e, nil
}

func (l *Ledger) event(ctx context.Context, st *sql.Stmt, id string) (Event, bool, error) {
	e := Event{ID: id}
	var from, until sql.NullInt64
	err := st.QueryRowContext(ctx, id).Scan(&e.Points, &e.Period, &e.Volume, &from, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("ingest: event %s: %w", id, err)
	}
	if from.Valid {
		e.ValidFrom = time.UnixMilli(from.Int64).UTC()
	}
	if until.Valid {
		e.ValidUntil = time.UnixMilli(until.Int64).UTC()
	}
	return e, true, nil
}

// SetPassholder creates or replaces a passholder (points and blocked flag).
func (l *Ledger) SetPassholder(ctx context.Context, p Passholder) error {
	if err := protocol.CheckChip(p.ChipNumber); err != nil {
		return fmt.Errorf("ingest: passholder %s: %w", protocol.MaskChip(p.ChipNumber), err)
	}
	err := l.exec(ctx, `INSERT INTO passholders (chip_number, total_points, blocked, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (chip_number) DO UPDATE SET total_points = excluded.total_points,
		blocked = excluded.blocked`, p.ChipNumber, p.TotalPoints, p.Blocked, protocol.FormatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("ingest: passholder %s: %w", protocol.MaskChip(p.ChipNumber), err)
	}
	return nil
}

// Passholder returns the passholder of chip, or ErrNotFound.
func (l *Ledger) Passholder(ctx context.Context, chip string) (Passholder, error) {
	p := Passholder{ChipNumber: chip}
	err := l.st.selHolder.QueryRowContext(ctx, chip).Scan(&p.TotalPoints, &p.Blocked)
	if errors.Is(err, sql.ErrNoRows) {
		return Passholder{}, fmt.Errorf("ingest: passholder %s: %w", protocol.MaskChip(chip), ErrNotFound)
	}
	if err != nil {
		return Passholder{}, fmt.Errorf("ingest: passholder %s: %w", protocol.MaskChip(chip), err)
	}
	return p, nil
}

func nullMs(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// Enroll makes chip a passholder with no points, unless it already is one.
func (l *Ledger) Enroll(ctx context.Context, chip string) error {
	if err := protocol.CheckChip(chip); err != nil {
		return fmt.Errorf("ingest: enroll %s: %w", protocol.MaskChip(chip), err)
	}
	if err := l.exec(ctx, `INSERT INTO passholders (chip_number, total_points, blocked, created_at)
		VALUES (?, 0, false, ?) ON CONFLICT (chip_number) DO NOTHING`, chip, protocol.FormatTime(time.Now())); err != nil {
		return fmt.Errorf("ingest: enroll %s: %w", protocol.MaskChip(chip), err)
	}
	return nil
}

// SetBlocked blocks or unblocks chip, enrolling it if needed; its points stay.
func (l *Ledger) SetBlocked(ctx context.Context, chip string, blocked bool) error {
	if err := l.Enroll(ctx, chip); err != nil {
		return err
	}
	if err := l.exec(ctx, `UPDATE passholders SET blocked = ? WHERE chip_number = ?`, blocked, chip); err != nil {
		return fmt.Errorf("ingest: block %s: %w", protocol.MaskChip(chip), err)
	}
	return nil
}
