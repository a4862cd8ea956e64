package ingest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ledger tests run against every backend: SQLite always, PostgreSQL when
// one is reachable at KIOSK_TEST_POSTGRES (default the local server with
// trust auth). Each PostgreSQL test gets a schema of its own, with a random
// name, dropped at cleanup. Without a reachable server the PostgreSQL tests
// skip, unless KIOSK_TEST_POSTGRES_REQUIRED=1 (CI), which fails them.

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

// pgRequiredEnv set to 1 makes an unreachable PostgreSQL fail the tests
// that need one instead of skipping them.
const pgRequiredEnv = "KIOSK_TEST_POSTGRES_REQUIRED"

// pgPings holds one ping per server URL and test binary.
var pgPings sync.Map // URL → func() error

// pgReachable pings the server at url, once per test binary.
func pgReachable(url string) error {
	f, _ := pgPings.LoadOrStore(url, sync.OnceValue(func() error {
		db, err := sql.Open("pgx", url)
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
			tb.Fatalf("PostgreSQL not reachable at %s, and %s=1 requires it: %v", redact(base), pgRequiredEnv, err)
		}
		tb.Skipf("PostgreSQL not reachable at %s (KIOSK_TEST_POSTGRES gives another URL; %s=1 makes this a failure): %v",
			redact(base), pgRequiredEnv, err)
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

// recordTB records how a helper ends a test, without ending this one.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Skipf(f string, a ...any)  { r.skipped = fmt.Sprintf(f, a...); runtime.Goexit() }
func (r *recordTB) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...); runtime.Goexit() }

// endOf runs f with a recordTB in a goroutine of its own (Goexit ends it).
func endOf(t *testing.T, f func(tb testing.TB)) *recordTB {
	r := &recordTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r
}

// TestPostgresRequired: an unreachable PostgreSQL skips the tests that need
// it, but fails them under KIOSK_TEST_POSTGRES_REQUIRED=1, so that CI cannot
// pass with the PostgreSQL half silently skipped.
func TestPostgresRequired(t *testing.T) {
	t.Setenv("KIOSK_TEST_POSTGRES", "postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	t.Setenv(pgRequiredEnv, "")
	if r := endOf(t, func(tb testing.TB) { pgDSN(tb) }); r.skipped == "" || r.failed != "" {
		t.Fatalf("not required: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	t.Setenv(pgRequiredEnv, "1")
	r := endOf(t, func(tb testing.TB) { pgDSN(tb) })
	if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, pgRequiredEnv) {
		t.Fatalf("required: skipped %q, failed %q; want a failure naming %s", r.skipped, r.failed, pgRequiredEnv)
	}
}
