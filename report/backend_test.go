package report

import (
	"database/sql"
	"github.com/uitpas/tap-kiosk/internal/pgtest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uitpas/tap-kiosk/ingest"
)

type backend struct {
	name string
	dsn  func(tb testing.TB) string
}

var backends = []backend{
	{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "ledger.db") }},
	{"postgres", pgDSN},
}

func eachBackend(t *testing.T, fn func(t *testing.T, dsn func(testing.TB) string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.dsn) })
	}
}

func openLedger(tb testing.TB, dsn string) *ingest.Ledger {
	tb.Helper()
	l, err := ingest.Open(dsn, ingest.DefaultOpts())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func openReader(tb testing.TB, l *ingest.Ledger) *Reader {
	tb.Helper()
	r, err := Open(l)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// rawDB opens the ledger's database for a test to write rows directly.
func rawDB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	driver, src := "sqlite", "file:"+dsn+"?_pragma=busy_timeout(5000)&_pragma=synchronous(OFF)"
	if strings.HasPrefix(dsn, "postgres") {
		driver, src = "pgx", dsn
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// pgDSN is a fresh, empty PostgreSQL ledger location (see internal/pgtest).
func pgDSN(tb testing.TB) string { tb.Helper(); return pgtest.DSN(tb) }
