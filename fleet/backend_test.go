package fleet

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
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/ingest"
)

// The registry tests run on every ledger backend, as ingest's do: SQLite
// always, PostgreSQL when one is reachable at KIOSK_TEST_POSTGRES (default
// the local server), in a schema of its own dropped at cleanup. Without a
// reachable server the PostgreSQL tests skip, unless
// KIOSK_TEST_POSTGRES_REQUIRED=1 (CI), which fails them.

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

// eachBackend runs fn per backend with a fresh ledger location.
func eachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.dsn(t)) })
	}
}

// openRegistry opens the ledger at dsn and the registry in it.
func openRegistry(tb testing.TB, dsn string) (*Registry, *ingest.Ledger) {
	tb.Helper()
	l, err := ingest.Open(dsn, ingest.DefaultOpts())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	r, err := Open(context.Background(), l.DB(), l.Dialect(), Opts{})
	if err != nil {
		tb.Fatal(err)
	}
	return r, l
}

func pgAdminURL() string {
	if u := os.Getenv("KIOSK_TEST_POSTGRES"); u != "" {
		return u
	}
	return defaultTestPostgres
}

// pgDSN creates an empty schema for tb and returns a URL whose search_path
// is that schema; when PostgreSQL is unreachable it skips tb, or fails it
// under KIOSK_TEST_POSTGRES_REQUIRED=1.
func pgDSN(tb testing.TB) string {
	tb.Helper()
	base := pgAdminURL()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv(pgRequiredEnv) == "1" {
			tb.Fatalf("PostgreSQL not reachable, and %s=1 requires it: %v", pgRequiredEnv, err)
		}
		tb.Skipf("PostgreSQL not reachable (KIOSK_TEST_POSTGRES gives another URL; %s=1 makes this a failure): %v", pgRequiredEnv, err)
	}
	var r [6]byte
	rand.Read(r[:])
	schema := "kiosk_fleet_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
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

// TestPostgresRequired: an unreachable PostgreSQL skips the registry's
// PostgreSQL tests, but fails them under KIOSK_TEST_POSTGRES_REQUIRED=1.
func TestPostgresRequired(t *testing.T) {
	t.Setenv("KIOSK_TEST_POSTGRES", "postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	for _, required := range []string{"", "1"} {
		t.Setenv(pgRequiredEnv, required)
		r := &recordTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); pgDSN(r) }()
		<-done
		if required == "1" && (r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, pgRequiredEnv)) {
			t.Errorf("required: skipped %q, failed %q; want a failure naming %s", r.skipped, r.failed, pgRequiredEnv)
		}
		if required == "" && (r.skipped == "" || r.failed != "") {
			t.Errorf("not required: skipped %q, failed %q; want a skip", r.skipped, r.failed)
		}
	}
}
