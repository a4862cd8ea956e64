package ingest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The ledger tests run against every backend: SQLite always, PostgreSQL when
// one is reachable at KIOSK_TEST_POSTGRES (default the local server with
// trust auth). Each PostgreSQL test gets a schema of its own, with a random
// name, dropped at cleanup.

const defaultTestPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// opener opens a fresh, empty ledger for a test.
type opener func(tb testing.TB, o Opts) *Ledger

type backend struct {
	name string
	dsn  func(tb testing.TB) string // a fresh, empty ledger location
}

var backends = []backend{
	{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "ledger.db") }},
	{"postgres", pgDSN},
}

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, open opener)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fn(t, func(tb testing.TB, o Opts) *Ledger { return openAt(tb, b.dsn(tb), o) })
		})
	}
}

func openAt(tb testing.TB, dsn string, o Opts) *Ledger {
	tb.Helper()
	l, err := Open(dsn, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func pgAdminURL() string {
	if u := os.Getenv("KIOSK_TEST_POSTGRES"); u != "" {
		return u
	}
	return defaultTestPostgres
}

// pgReachable pings the test server once per test binary.
var pgReachable = sync.OnceValue(func() error {
	db, err := sql.Open("pgx", pgAdminURL())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db.PingContext(ctx)
})

// pgDSN creates an empty schema for tb and returns a URL whose search_path
// is that schema; it skips tb when PostgreSQL is unreachable.
func pgDSN(tb testing.TB) string {
	tb.Helper()
	base := pgAdminURL()
	if err := pgReachable(); err != nil {
		tb.Skipf("PostgreSQL not reachable at %s (KIOSK_TEST_POSTGRES gives another URL): %v", redact(base), err)
	}
	var r [6]byte
	rand.Read(r[:])
	schema := "kiosk_test_" + hex.EncodeToString(r[:])
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
