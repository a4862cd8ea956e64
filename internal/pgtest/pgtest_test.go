package pgtest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recordTB records how DSN ends a test, without ending this one.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Skipf(f string, a ...any)  { r.skipped = fmt.Sprintf(f, a...); runtime.Goexit() }
func (r *recordTB) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...); runtime.Goexit() }

func endOf(t *testing.T, f func(tb testing.TB)) *recordTB {
	r := &recordTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r
}

// An unreachable PostgreSQL skips the tests that need it, but fails them
// under KIOSK_TEST_POSTGRES_REQUIRED=1.
func TestPostgresRequired(t *testing.T) {
	t.Setenv(Env, "postgres://postgres:secret@127.0.0.1:1/none?sslmode=disable")
	t.Setenv(RequiredEnv, "")
	if r := endOf(t, func(tb testing.TB) { DSN(tb) }); r.skipped == "" || r.failed != "" {
		t.Fatalf("not required: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	t.Setenv(RequiredEnv, "1")
	r := endOf(t, func(tb testing.TB) { DSN(tb) })
	if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, RequiredEnv) {
		t.Fatalf("required: skipped %q, failed %q; want a failure naming %s", r.skipped, r.failed, RequiredEnv)
	}
	if strings.Contains(r.failed, "secret") {
		t.Fatalf("the password is in the message: %q", r.failed)
	}
}

// A reachable server gives a schema of its own per test.
func TestDSN(t *testing.T) {
	a, b := DSN(t), DSN(t)
	if a == b || !strings.Contains(a, "search_path=kiosk_test_") {
		t.Fatalf("%s %s", a, b)
	}
}
