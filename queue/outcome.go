package queue

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Outcome counts: how many taps ended how, since the queue was created.
// Central reads them from the kiosk's Status (refusals decided at the kiosk
// never reach it otherwise), so they are monotonic across restarts: saved
// is written in the checkin's own transaction (exactly the checkins that
// are on disk), a refusal in memory first and then with the next checkin or
// within outcomeFlushEvery (no fsync of its own on the tap path; a crash
// may forget the refusals of the last seconds, never count one twice).

// SavedOutcome is the outcome Enqueue counts itself.
const SavedOutcome = "saved"

// outcomeFlushEvery bounds how long a refusal's count stays in memory only.
const outcomeFlushEvery = 10 * time.Second

// outcomes is the counts as on disk and those not written yet.
type outcomes struct {
	mu      sync.Mutex
	disk    map[string]int64
	pending map[string]int64
	// armed: the outbox's flush timer runs. It is armed only while counts
	// wait, so that an idle kiosk does not wake every outcomeFlushEvery for
	// nothing to write.
	armed bool
}

// CountOutcome counts one tap that ended with outcome (a refusal; saved is
// counted by Enqueue). It returns at once: the count reaches the disk with
// the next checkin or within outcomeFlushEvery.
func (ob *Outbox) CountOutcome(outcome string) {
	ob.outc.mu.Lock()
	ob.outc.pending[outcome]++
	ob.armFlush()
	ob.outc.mu.Unlock()
}

// armFlush starts the flush timer unless it runs: the counts waiting now
// are written within outcomeFlushEvery. ob.outc.mu held.
func (ob *Outbox) armFlush() {
	if !ob.outc.armed {
		ob.outc.armed = true
		ob.outT.Reset(outcomeFlushEvery)
	}
}

// flushDue is the maintainer's turn when the flush timer fired: it writes
// the counts waiting, and the next count arms the timer again.
func (ob *Outbox) flushDue(ctx context.Context) {
	ob.outc.mu.Lock()
	ob.outc.armed = false
	ob.outc.mu.Unlock()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if !ob.closed {
		ob.flushOutcomes(ctx)
	}
}

// Outcomes returns the counts of tap outcomes since the queue was created.
func (ob *Outbox) Outcomes() map[string]int64 {
	ob.outc.mu.Lock()
	defer ob.outc.mu.Unlock()
	m := maps.Clone(ob.outc.disk)
	for k, v := range ob.outc.pending {
		m[k] += v
	}
	return m
}

// loadOutcomes reads the counts at open.
func (ob *Outbox) loadOutcomes(ctx context.Context) error {
	ob.outc.disk, ob.outc.pending = map[string]int64{}, map[string]int64{}
	rows, err := ob.w.c.QueryContext(ctx, "SELECT name, n FROM outcome")
	if err != nil {
		return fmt.Errorf("outcome counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return fmt.Errorf("outcome counts: %w", err)
		}
		ob.outc.disk[name] = n
	}
	return rows.Err()
}

// takeOutcomes returns the counts to write with a transaction, plus one
// saved when saved; the caller gives them back with settleOutcomes.
func (ob *Outbox) takeOutcomes(saved bool) map[string]int64 {
	ob.outc.mu.Lock()
	defer ob.outc.mu.Unlock()
	m := ob.outc.pending
	ob.outc.pending = map[string]int64{}
	if saved {
		m[SavedOutcome]++
	}
	return m
}

// settleOutcomes books counts taken by takeOutcomes: on disk when the
// transaction committed, back to pending (less the saved that did not
// happen) when it did not.
func (ob *Outbox) settleOutcomes(m map[string]int64, committed, saved bool) {
	ob.outc.mu.Lock()
	defer ob.outc.mu.Unlock()
	for k, v := range m {
		switch {
		case committed:
			ob.outc.disk[k] += v
		case saved && k == SavedOutcome:
			if v > 1 {
				ob.outc.pending[k] += v - 1
			}
		default:
			ob.outc.pending[k] += v
		}
	}
	if len(ob.outc.pending) > 0 {
		ob.armFlush() // not written: again within outcomeFlushEvery
	}
}

// writeOutcomes adds m to the table, inside the caller's transaction on w.
func (ob *Outbox) writeOutcomes(ctx context.Context, m map[string]int64) error {
	for k, v := range m {
		if v == 0 {
			continue
		}
		if _, err := ob.stmts.addOutcome.ExecContext(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

// flushOutcomes writes refusal counts waiting in memory in a transaction of
// their own (the maintainer, within outcomeFlushEvery of a count, and
// Close). ob.mu held.
func (ob *Outbox) flushOutcomes(ctx context.Context) {
	m := ob.takeOutcomes(false)
	if len(m) == 0 {
		return
	}
	err := ob.tx(ctx, &ob.w, func() error { return ob.writeOutcomes(ctx, m) })
	ob.settleOutcomes(m, err == nil, false)
	if err != nil {
		ob.log.Warn("queue: outcome counts not written; kept in memory", "err", err)
	}
}

// mergeOutcomes carries the outcome counts of a salvaged database over, so
// that what central was told stays monotonic: each count becomes the larger
// of the two (a salvage run twice adds nothing). Best effort: an unreadable
// table leaves the counts as they are.
func (ob *Outbox) mergeOutcomes(ctx context.Context, src *sql.DB) {
	rows, err := src.QueryContext(ctx, "SELECT name, n FROM outcome")
	if err != nil {
		return
	}
	old := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if rows.Scan(&name, &n) == nil {
			old[name] = n
		}
	}
	rows.Close()
	cur := ob.Outcomes()
	add := map[string]int64{}
	for k, v := range old {
		if v > cur[k] {
			add[k] = v - cur[k]
		}
	}
	if len(add) == 0 {
		return
	}
	ob.outc.mu.Lock()
	for k, v := range add {
		ob.outc.pending[k] += v
	}
	ob.outc.mu.Unlock()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if !ob.closed {
		ob.flushOutcomes(ctx)
	}
}
