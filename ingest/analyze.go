package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// analyzer keeps the planner's statistics of a PostgreSQL ledger up to
// date where the server's autovacuum is off (as on some benchmark hosts).
//
// pgx prepares every statement once per connection, and after five
// executions the server keeps a generic plan for it. One made while a new
// ledger's tables were nearly empty scans them sequentially, the cheapest
// plan then, and only an ANALYZE of the table makes the server plan again:
// autovacuum's does, when a tenth of a table changed. Without it the plan
// is kept for good: measured with autovacuum off, the batch's id lookup
// took 280 to 440 ms at 45 000 ledger rows. So the ledger analyzes its
// growing tables itself as autovacuum would: once 1 000 checkins plus a
// fifth of those booked so far have come since the last time. Planning
// every execution instead (plan_cache_mode force_custom_plan) cost a third
// of the ingest rate in large batches (measured).
type analyzer struct {
	l       *Ledger
	mu      sync.Mutex
	on      bool  // the server's autovacuum is off
	total   int64 // checkins processed since the ledger opened
	due     int64 // total at which the next ANALYZE runs
	running bool
	closed  bool // the ledger is closing: no ANALYZE starts any more
	wg      sync.WaitGroup
	runs    int // ANALYZEs done (tests)
}

// analyzeTables are the tables that grow with the checkins (the others,
// events and assignments, change by hand, a few rows at a time), each with
// the columns whose statistics a plan of the ledger or the reports turns
// on: a card's saved checkins in a date range, the reports' date range.
// The plans turn on the tables' sizes above all, which any ANALYZE renews;
// statistics of every column cost five times as much (measured: 100 ms
// against 20 ms at 20 000 checkins). With every column, BenchmarkIngestVsBare
// at 20 480 checkins ran nine ANALYZEs, 467 ms in all, beside 1.2 s of
// batches on a 2-core host.
const analyzeTables = "checkins (chip_number, dated_ms), passholders (chip_number), boots (device_id)"

// analyzeFirst is when the first ANALYZE runs: soon, since the first plans
// were made on empty tables.
const analyzeFirst = 50

func newAnalyzer(l *Ledger) (*analyzer, error) {
	a := &analyzer{l: l}
	var av string
	if err := l.db.QueryRow("SHOW autovacuum").Scan(&av); err != nil {
		return nil, fmt.Errorf("ingest: show autovacuum: %w", err)
	}
	a.on = av == "off"
	if a.on {
		l.o.Logger.Info("ingest: the server's autovacuum is off: the ledger analyzes its tables as they grow", "tables", analyzeTables)
		a.due = analyzeFirst
	}
	return a, nil
}

// booked counts n checkins processed and starts an ANALYZE in the
// background when one is due (never two at once).
func (a *analyzer) booked(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.on || a.closed {
		return
	}
	a.total += int64(n)
	if a.total < a.due || a.running {
		return
	}
	a.running = true
	a.due = a.total + 1000 + a.total/5
	a.wg.Add(1)
	go a.run()
}

func (a *analyzer) run() {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	_, err := a.l.db.ExecContext(ctx, "ANALYZE "+analyzeTables)
	a.mu.Lock()
	a.running = false
	a.runs++
	a.mu.Unlock()
	if err != nil {
		a.l.o.Logger.Warn("ingest: analyze", "tables", analyzeTables, "err", err)
		return
	}
	a.l.o.Logger.Debug("ingest: analyzed", "tables", analyzeTables, "took", time.Since(start))
}

// close stops new ANALYZEs and waits for one in progress (Ledger.Close): a
// batch booked while the ledger closes starts none, so nothing is added to
// the wait group while Close waits on it.
func (a *analyzer) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}

// wait waits for an ANALYZE in progress (tests).
func (a *analyzer) wait() { a.wg.Wait() }
