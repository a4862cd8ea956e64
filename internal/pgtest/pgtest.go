// Package pgtest gives tests a PostgreSQL of their own: an empty schema
// with a random name on the test server, dropped at cleanup. The ledger,
// the fleet registry, the reports and kiosk-ingest all test on it, so the
// rules of when a missing server skips and when it fails are written once.
//
// The server is KIOSK_TEST_POSTGRES (default the local one with trust
// auth). Without a reachable server the tests skip, unless
// KIOSK_TEST_POSTGRES_REQUIRED=1 (CI sets it), which fails them: CI cannot
// pass with the PostgreSQL half silently skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// Env names the server; RequiredEnv=1 turns a skip into a failure.
const (
	Env         = "KIOSK_TEST_POSTGRES"
	RequiredEnv = "KIOSK_TEST_POSTGRES_REQUIRED"
	defaultURL  = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// AdminURL is the test server's URL.
func AdminURL() string {
	if u := os.Getenv(Env); u != "" {
		return u
	}
	return defaultURL
}

// pings holds one ping per server URL and test binary.
var pings sync.Map // URL → func() error

func reachable(u string) error {
	f, _ := pings.LoadOrStore(u, sync.OnceValue(func() error {
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

// redact hides a password in u.
func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(unparsable URL)"
}

// DSN creates an empty schema for tb and returns a URL whose search_path
// is that schema. When the server is unreachable it skips tb, or fails it
// under KIOSK_TEST_POSTGRES_REQUIRED=1.
func DSN(tb testing.TB) string {
	tb.Helper()
	base := AdminURL()
	if err := reachable(base); err != nil {
		if os.Getenv(RequiredEnv) == "1" {
			tb.Fatalf("pgtest: PostgreSQL not reachable at %s, and %s=1 requires it: %v", redact(base), RequiredEnv, err)
		}
		tb.Skipf("pgtest: PostgreSQL not reachable at %s (%s gives another URL; %s=1 makes this a failure): %v",
			redact(base), Env, RequiredEnv, err)
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
		tb.Fatalf("pgtest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("pgtest: drop schema %s: %v", schema, err)
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
