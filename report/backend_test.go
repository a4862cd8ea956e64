package report

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/ingest"
)

// The report tests run on every backend, as ingest's ledger tests do
// (ingest/backend_test.go): SQLite always, PostgreSQL when one is reachable
// at KIOSK_TEST_POSTGRES (default the local server with trust auth), each
// test in a schema of its own dropped at cleanup. Without a reachable
// server the PostgreSQL tests skip, unless KIOSK_TEST_POSTGRES_REQUIRED=1,
// which fails them.

const defaultTestPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

const pgRequiredEnv = "KIOSK_TEST_POSTGRES_REQUIRED"

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

func pgAdminURL() string {
	if u := os.Getenv("KIOSK_TEST_POSTGRES"); u != "" {
		return u
	}
	return defaultTestPostgres
}

var pgPings sync.Map // URL → func() error

func pgReachable(u string) error {
	f, _ := pgPings.LoadOrStore(u, sync.OnceValue(func() error {
		db, err := sql.Open("pgx", u)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}))
	return f.(func() error)()
}

// pgDSN creates an empty schema for tb and returns a URL whose search_path
// is that schema; when PostgreSQL is unreachable it skips tb, or fails it
// under KIOSK_TEST_POSTGRES_REQUIRED=1.
func pgDSN(tb testing.TB) string {
	tb.Helper()
	base := pgAdminURL()
	if err := pgReachable(base); err != nil {
		if os.Getenv(pgRequiredEnv) == "1" {
			tb.Fatalf("PostgreSQL not reachable, and %s=1 requires it: %v", pgRequiredEnv, err)
		}
		tb.Skipf("PostgreSQL not reachable (KIOSK_TEST_POSTGRES gives another URL; %s=1 makes this a failure): %v", pgRequiredEnv, err)
	}
	var r [6]byte
	rand.Read(r[:])
	schema := "kiosk_report_" + hex.EncodeToString(r[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
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
