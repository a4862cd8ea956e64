package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

// ackLog records, in order, what the writer did with each checkin: its
// Result handed to the client ("result ID") and its acknowledgement ("ack
// ID").
type ackLog struct {
	mu  sync.Mutex
	log []string
}

func (a *ackLog) add(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = append(a.log, s)
}

func (a *ackLog) has(s string) bool { return a.index(s) >= 0 }

func (a *ackLog) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("%q", a.log)
}

func (a *ackLog) index(s string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, x := range a.log {
		if x == s {
			return i
		}
	}
	return -1
}

// logClient is the broker client of the writer: every Publish completes at
// once and is recorded. The rest of mqtt.Client is not used by the writer.
type logClient struct {
	mqtt.Client
	log *ackLog
}

func (c logClient) Publish(_ string, _ byte, _ bool, payload any) mqtt.Token {
	if r, err := protocol.DecodeResult(payload.([]byte)); err == nil {
		c.log.add("result " + r.ID)
	}
	return doneToken{}
}

type doneToken struct{}

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Done() <-chan struct{}          { c := make(chan struct{}); close(c); return c }
func (doneToken) Error() error                   { return nil }

// logMessage is a received checkin whose acknowledgement is recorded.
type logMessage struct {
	mqtt.Message
	id  string
	log *ackLog
}

func (m logMessage) Ack() { m.log.add("ack " + m.id) }

// chipHold is chip's advisory lock held by a transaction of its own, as a
// batch of another instance would hold it.
type chipHold struct {
	tx  *sql.Tx
	pid int // the holding backend
	l   *Ledger
}

func holdChip(t *testing.T, l *Ledger, chip string) *chipHold {
	t.Helper()
	ctx := context.Background()
	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	h := &chipHold{tx: tx, l: l}
	if _, err := tx.ExecContext(ctx, l.d.lockChips, []string{chip}); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&h.pid); err != nil {
		t.Fatal(err)
	}
	return h
}

// waited waits until a batch waits for the lock.
func (h *chipHold) waited(t *testing.T) {
	t.Helper()
	if !waitfor.Within(waitfor.Timeout, func() bool {
		var n int
		err := h.l.DB().QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, h.pid).Scan(&n)
		return err == nil && n == 1
	}) {
		t.Fatal("no batch waited for the chip's lock")
	}
}

func (h *chipHold) release() { h.tx.Rollback() }

// writerRig is a Service's writer run on its own, on a fresh PostgreSQL
// ledger with evt-1 and cards A and B: no broker, its client and the
// checkins' messages record in log what it did.
type writerRig struct {
	t    *testing.T
	l    *Ledger
	s    *Service
	log  *ackLog
	done chan struct{}
	once sync.Once
}

// startWriter starts the writer of a Service with o; it is stopped when the
// test ends, after what the test holds is released (cleanups run last
// first, and a writer waits for the batch that waits for a hold).
func startWriter(t *testing.T, o ServiceOpts) *writerRig {
	t.Helper()
	l := openAt(t, pgDSN(t), DefaultOpts())
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: protocol.PeriodDay, Volume: 1})
	o.Broker, o.BatchWait, o.Logger = "tcp://127.0.0.1:1", -1, testLogger(t)
	s, err := New(l, o)
	if err != nil {
		t.Fatal(err)
	}
	r := &writerRig{t: t, l: l, s: s, log: &ackLog{}, done: make(chan struct{})}
	go func() { defer close(r.done); s.writer(logClient{log: r.log}) }()
	t.Cleanup(r.stop)
	return r
}

// queue hands c, received at at, to the writer; it returns c's id.
func (r *writerRig) queue(c protocol.Checkin, at time.Time) string {
	r.s.in <- item{in: Input{Checkin: c, ReceivedAt: at}, msg: logMessage{id: c.ID, log: r.log}}
	return c.ID
}

// stop stops the service and fails the test if its writer does not return.
func (r *writerRig) stop() {
	r.once.Do(func() {
		close(r.s.stop)
		select {
		case <-r.done:
		case <-time.After(waitfor.Timeout):
			r.t.Fatal("the writer did not return after the stop")
		}
	})
}

// TestTwoBatchesInFlight: on PostgreSQL a batch that waits (here for a
// card's lock, held by another transaction) does not hold the next one
// back: the next batch commits and its Result goes out, but its
// acknowledgement waits until the first batch's own went out (PUBACKs in
// receive order). With one batch in flight the second would wait.
func TestTwoBatchesInFlight(t *testing.T) {
	r := startWriter(t, ServiceOpts{})
	if r.s.o.InFlight != 2 {
		t.Fatalf("InFlight %d on PostgreSQL, want 2 by default", r.s.o.InFlight)
	}
	hold := holdChip(t, r.l, chipA)
	now := time.Now()
	first := r.queue(checkin(t, chipA, "evt-1", now), now)
	// Its batch waits for the lock before the second is queued, so the two
	// are separate batches.
	hold.waited(t)
	second := r.queue(checkin(t, chipB, "evt-1", now), now)
	log := r.log
	if !waitfor.Within(waitfor.Timeout, func() bool { return log.has("result " + second) }) {
		t.Fatalf("the second batch was not answered while the first waited: %s", log)
	}
	if log.has("ack "+second) || log.has("result "+first) {
		t.Fatalf("while the first batch waits: %s; want only the second's Result", log)
	}
	hold.release()
	if !waitfor.Within(waitfor.Timeout, func() bool { return log.has("ack " + second) }) {
		t.Fatalf("not acknowledged after the lock was released: %s", log)
	}
	if a, b := log.index("ack "+first), log.index("ack "+second); a < 0 || a > b {
		t.Fatalf("acknowledgements out of receive order: %s", log)
	}
}

// TestOneBatchInFlightOnSQLite: SQLite has one writer, so the service books
// one batch at a time there.
func TestOneBatchInFlightOnSQLite(t *testing.T) {
	s, err := New(openLedger(t, DefaultOpts()), ServiceOpts{Broker: "tcp://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.o.InFlight != 1 {
		t.Fatalf("InFlight %d on SQLite, want 1", s.o.InFlight)
	}
}

// TestNoAckAfterAnUnackedBatch: when the service stops while a batch is
// still retried, the batch after it, committed and answered meanwhile, is
// not acknowledged either (a PUBACK never goes ahead of an earlier one);
// the broker delivers both again and the ledger answers the second as a
// replay. The writer returns once both bookings have ended.
func TestNoAckAfterAnUnackedBatch(t *testing.T) {
	r := startWriter(t, ServiceOpts{})
	now := time.Now()
	// The ledger refuses this batch (an id the decoder never lets through),
	// so its booking retries until the stop.
	bad := checkin(t, chipA, "evt-1", now)
	bad.ID = "not an id"
	r.queue(bad, now)
	if !waitfor.Within(waitfor.Timeout, func() bool { return r.s.Counters().DBErrors > 0 }) {
		t.Fatal("the refused batch was never tried")
	}
	good := r.queue(checkin(t, chipB, "evt-1", now), now)
	if !waitfor.Within(waitfor.Timeout, func() bool { return r.log.has("result " + good) }) {
		t.Fatalf("the second batch was not answered while the first was retried: %s", r.log)
	}
	r.stop()
	if r.log.has("ack "+good) || r.log.has("ack "+bad.ID) {
		t.Fatalf("acknowledged after an unacknowledged batch: %s", r.log)
	}
}

// TestNoTickWhileABatchHangs: OnTick (systemd's watchdog) stops while a
// batch is stuck in the ledger, even though the writer has a free slot and
// is idle: the ingest is not booking. It ticks again once the batch is
// booked.
func TestNoTickWhileABatchHangs(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ticks := make(chan time.Time, 64)
	r := startWriter(t, ServiceOpts{Clock: clk, TickEvery: time.Second, OnTick: func(now time.Time) { ticks <- now }})
	hold := holdChip(t, r.l, chipA)
	// One idle turn of the tick's timer: it fired, was handled, and is set
	// again.
	turn := func() {
		t.Helper()
		waitfor.Cond(t, "the idle tick's timer", func() bool { return clk.Timers() >= 1 })
		clk.Advance(time.Second)
		waitfor.Cond(t, "the idle tick's timer set again", func() bool { return clk.Timers() >= 1 })
	}
	turn()
	if len(ticks) != 1 {
		t.Fatalf("%d ticks in an idle second, want 1", len(ticks))
	}
	<-ticks

	now := clk.Now()
	id := r.queue(checkin(t, chipA, "evt-1", now), now)
	hold.waited(t)
	for range 3 {
		turn()
	}
	if len(ticks) != 0 {
		t.Fatalf("%d ticks while the batch hung, want none", len(ticks))
	}
	hold.release()
	select {
	case <-ticks:
	case <-time.After(waitfor.Timeout):
		t.Fatal("no tick after the batch was booked")
	}
	if !r.log.has("ack " + id) {
		t.Fatalf("booked but not acknowledged: %s", r.log)
	}
}
