package fleet

import (
	"context"
	"github.com/uitpas/tap-kiosk/internal/pgtest"
	"path/filepath"
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

// pgDSN is a fresh, empty PostgreSQL ledger location (see internal/pgtest).
func pgDSN(tb testing.TB) string { tb.Helper(); return pgtest.DSN(tb) }
