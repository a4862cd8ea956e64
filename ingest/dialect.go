package ingest

import (
	"database/sql"
	"errors"
	"fmt"
	"github.com/uitpas/tap-kiosk/internal/sqlbind"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "modernc.org/sqlite"
)

// dialect is what differs between the ledger's databases: how to open one,
// its migrations, placeholders, and the few statements that are not
// portable. The rules (process.go) and every other statement are shared.
type dialect struct {
	name string
	// migrations is the glob of this dialect's embedded migrations; the
	// recorded version is the file's path in the embedded tree.
	migrations string
	// migrateLock, when set, is run first in every migration transaction so
	// that instances starting at once migrate one after the other.
	migrateLock string
	// lockChips, when set, takes the per-chip write lock of a batch: one
	// argument, the batch's chip numbers. SQLite needs none: a write
	// transaction (BEGIN IMMEDIATE) already excludes every other writer.
	lockChips string
	// entries lists the ledger in booking order.
	entries string
	// dollar says placeholders are $1, $2, … rather than ?.
	dollar bool
	// setBased books a batch with a statement per step for the whole
	// batch (pgbatch.go) rather than per checkin: for a server, where each
	// statement is a round trip.
	setBased bool
	// writers is how many batches are best booked at once (the Service's
	// InFlight default): SQLite has one writer, so a second batch would only
	// wait for the first; a server books one while the other waits on its
	// round trips (a third gained nothing, measured).
	writers int
	// retryable reports a transaction the database aborted to break a
	// deadlock or a serialization conflict, or a batch that found what it
	// read changed under it (errIDRace, errHolderMoved): running it again
	// is right.
	retryable func(error) bool
}

var sqliteDialect = &dialect{
	name:       "sqlite",
	migrations: "migrations/*.sql",
	entries: `SELECT id, device_id, seq, chip_number, event_id, counter_id, status, points,
		tapped_at, clock_synced, received_at, dated_ms FROM checkins ORDER BY rowid`,
	writers:   1,
	retryable: func(error) bool { return false },
}

var postgresDialect = &dialect{
	name:       "postgres",
	migrations: "migrations/postgres/*.sql",
	// Transaction-scoped, so a crashed instance cannot leave it held; keyed
	// by schema so that ledgers in different schemas of one database do not
	// wait for each other.
	migrateLock: `SELECT pg_advisory_xact_lock(hashtextextended('kiosk-ingest migrate ' || current_schema(), 0))`,
	// The locks are taken in key order, all before the batch writes
	// anything, so two batches sharing chips cannot deadlock on them. The
	// sort sits in a subquery (which the planner does not flatten), so the
	// aggregate calls the lock function in key order.
	lockChips: `SELECT count(pg_advisory_xact_lock(k)) FROM (
		SELECT DISTINCT hashtextextended('kiosk-ingest chip ' || current_schema() || ' ' || c, 0) AS k
		FROM unnest($1::text[]) AS c ORDER BY k) AS s`,
	entries: `SELECT id, device_id, seq, chip_number, event_id, counter_id, status, points,
		tapped_at, clock_synced, received_at, dated_ms FROM checkins ORDER BY booked`,
	dollar:   true,
	setBased: true,
	writers:  2,
	retryable: func(err error) bool {
		var pe *pgconn.PgError
		return errors.Is(err, errIDRace) || errors.Is(err, errIDUnread) || errors.Is(err, errHolderMoved) || errors.Is(err, errStatementGone) || errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
	},
}

// IsPostgres reports whether dsn names a PostgreSQL ledger
// (postgres://… or postgresql://…) rather than a SQLite file.
func IsPostgres(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// bind rewrites the ? placeholders of a shared statement for d. The shared
// statements have no ? inside string literals.
func (d *dialect) bind(q string) string {
	if !d.dollar {
		return q
	}
	return sqlbind.Dollar(q)
}

// openSQLite opens the SQLite file at path with the ledger's pragmas.
func openSQLite(path string, o Opts) (*sql.DB, error) {
	q := url.Values{}
	// busy_timeout first: switching to WAL takes a lock too, and several
	// processes may open one file at once.
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+o.Synchronous+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("ingest: open %s: %w", path, err)
	}
	// One connection: one writer at a time is SQLite's way, and it keeps the
	// prepared statements on one connection.
	db.SetMaxOpenConns(1)
	return db, nil
}

// openPostgres opens a PostgreSQL ledger. Synchronous NORMAL becomes
// synchronous_commit=off, the same trade as SQLite's NORMAL in WAL mode: a
// crash of the database host may lose the last commits, never corrupt.
func openPostgres(dsn string, o Opts) (*sql.DB, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("ingest: open %s: %w", redact(dsn), ErrInvalid)
	}
	if o.Synchronous == "NORMAL" {
		q := u.Query()
		if q.Get("synchronous_commit") == "" {
			q.Set("synchronous_commit", "off")
		}
		u.RawQuery = q.Encode()
	}
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, fmt.Errorf("ingest: open %s: %w", redact(dsn), err)
	}
	// The Service books postgresDialect.writers batches at once, each on a
	// connection of its own; the others serve the admin calls, the analyzer
	// and a Ledger shared by several writers. Idle ones are kept so that
	// their prepared statements are too.
	db.SetMaxOpenConns(6)
	db.SetMaxIdleConns(6)
	return db, nil
}

// redact hides the password of a database URL, for logs and String.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if IsPostgres(dsn) && err != nil {
			return "postgres://…"
		}
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
