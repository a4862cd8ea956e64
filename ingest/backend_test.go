package ingest

import (
	"github.com/uitpas/tap-kiosk/internal/pgtest"
	"path/filepath"
	"testing"
)

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

// pgDSN is a fresh, empty PostgreSQL ledger location (see internal/pgtest).
func pgDSN(tb testing.TB) string { tb.Helper(); return pgtest.DSN(tb) }
