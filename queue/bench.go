package queue

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Latency summarises per-operation durations measured by MeasureEnqueue and
// MeasureBareInsert; the project's bench tool prints them.
type Latency struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarise sorts d and returns its percentiles.
func Summarise(d []time.Duration) Latency { return summarise(d) }

func summarise(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	return Latency{N: len(d), P50: at(0.50), P99: at(0.99), Max: d[len(d)-1]}
}

// String renders the figures.
func (l Latency) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", l.N, l.P50, l.P99, l.Max)
}

// sampleBody is the size of a real checkin payload.
var sampleBody = []byte(`{"v":1,"id":"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11","deviceId":"kiosk-bib-geel-01",` +
	`"seq":4711,"chipNumber":"042F51B2712380","eventId":"evt-7781","counterId":"balie-geel",` +
	`"tappedAt":"2026-11-24T09:12:33.481Z","clockSynced":true,"bootId":"3f6c0e7a-2b1d-4c55-9a0e-6f1b2c3d4e5f","uptimeMs":123456}`)

// MeasureEnqueue opens a fresh outbox in dir and times n Enqueue calls, each
// with a history row, as the tap path does. Bodies are sized like a real
// checkin.
func MeasureEnqueue(ctx context.Context, dir string, n int) (Latency, error) {
	ob, err := Open(filepath.Join(dir, "bench-outbox.db"), Opts{MinFreeBytes: -1})
	if err != nil {
		return Latency{}, err
	}
	defer ob.Close()
	d := make([]time.Duration, 0, n)
	e := Entry{Chip: "042F51B2712380", EventID: "evt-7781", Bucket: "DAY:2026-11-24",
		Build: func(string, int64) ([]byte, error) { return sampleBody, nil }}
	for i := range n {
		e.Chip = fmt.Sprintf("04%012X", i)
		t0 := time.Now()
		if _, err := ob.Enqueue(ctx, e); err != nil {
			return Latency{}, err
		}
		d = append(d, time.Since(t0))
	}
	return summarise(d), nil
}

// MeasureBareInsert is the yardstick for MeasureEnqueue: n single-row
// INSERTs, each its own durable transaction, with the same journal_mode,
// synchronous and busy_timeout pragmas on the same disk (and SQLite's
// default automatic checkpoints, which is what a bare insert would get).
func MeasureBareInsert(ctx context.Context, dir string, n int) (Latency, error) {
	bi, err := OpenBareInsert(ctx, dir)
	if err != nil {
		return Latency{}, err
	}
	defer bi.Close()
	d := make([]time.Duration, 0, n)
	for range n {
		t, err := bi.Insert(ctx)
		if err != nil {
			return Latency{}, err
		}
		d = append(d, t)
	}
	return summarise(d), nil
}

// BareInsert is the yardstick one insert at a time, so that a bench can
// interleave it with what it compares (both then meet the same disk).
type BareInsert struct {
	db *sql.DB
	st *sql.Stmt
}

// OpenBareInsert opens the yardstick's database in dir.
func OpenBareInsert(ctx context.Context, dir string) (*BareInsert, error) {
	db, err := sql.Open("sqlite", DSN(filepath.Join(dir, "bench-bare.db"), true))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"); err != nil {
		db.Close()
		return nil, err
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("queue: bare insert: journal_mode %q: %v", mode, err)
	}
	st, err := db.PrepareContext(ctx, "INSERT INTO t (body) VALUES (?)")
	if err != nil {
		db.Close()
		return nil, err
	}
	return &BareInsert{db: db, st: st}, nil
}

// Insert makes one durable single-row insert and says how long it took.
func (b *BareInsert) Insert(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	_, err := b.st.ExecContext(ctx, sampleBody)
	return time.Since(t0), err
}

// Close closes the yardstick's database.
func (b *BareInsert) Close() error {
	b.st.Close()
	return b.db.Close()
}
