package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The local history feeds the constraint pre-filter: how often a chip saved
// for an event in the current period. A row is needed only while its period
// can still be the current one, so the outbox prunes it once the period is
// over:
//
//   - buckets as protocol.PeriodBucket makes them carry their period
//     (D2026-11-24, W2026-48, M2026-11, Q2026-4, Y2026): a row goes once its
//     period ended, judged in UTC plus historyGrace (2 days), which covers
//     every time zone (Europe/Brussels is UTC+1/+2) and a clock a day off.
//     A YEAR row is kept until 2 January of the next year, UTC;
//   - ABSOLUTE ("A") needs every row: those are kept, as long as the history
//     is within its share of MaxBytes (below);
//   - a bucket of another form: kept for historyKeepOther (400 days, longer
//     than any period), by tap time.
//
// The history counts against MaxBytes (HistoryRowBytes a row) and may take
// at most half of it: beyond that the oldest rows go first, ABSOLUTE ones
// included. Losing a row only costs the pre-filter: the tap is queued and
// central, which keeps the ledger, answers maximum-reached.
//
// The prune runs off the tap path: at Open and every pruneEvery (a day),
// and when a tap found the queue full while the history was over its
// share; it deletes in chunks of pruneChunk rows, each its own short
// transaction, so taps wait for a chunk at most. A clock set far ahead
// would prune early (only the pre-filter suffers); a clock behind prunes
// late.
const (
	pruneEvery       = 24 * time.Hour
	historyGrace     = 48 * time.Hour
	historyKeepOther = 400 * 24 * time.Hour
	pruneChunk       = 500
	voidKeep         = 30 * 24 * time.Hour
)

// bucketEnd is when the period a bucket names ends, at the latest (in UTC,
// before the grace); ok is false for ABSOLUTE and for buckets of another
// form.
func bucketEnd(b string) (time.Time, bool) {
	if len(b) < 5 {
		return time.Time{}, false
	}
	num := func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && len(s) > 0 && s[0] != '+' && s[0] != '-'
	}
	date := func(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC) }
	y, ok := num(b[1:min(5, len(b))])
	if !ok || y < 1970 || y > 9999 {
		return time.Time{}, false
	}
	// rest is what follows "X2026-" (ok false when there is no "-").
	rest := func() (int, bool) {
		if len(b) < 7 || b[5] != '-' {
			return 0, false
		}
		return num(b[6:])
	}
	switch b[0] {
	case 'Y':
		if len(b) == 5 {
			return date(y+1, 1, 1), true
		}
	case 'M':
		if m, ok := rest(); ok && len(b) == 8 && m >= 1 && m <= 12 {
			return date(y, m+1, 1), true
		}
	case 'Q':
		if q, ok := rest(); ok && len(b) == 7 && q >= 1 && q <= 4 {
			return date(y, q*3+1, 1), true
		}
	case 'W':
		if w, ok := rest(); ok && len(b) == 8 && w >= 1 && w <= 53 {
			// ISO week 1 holds 4 January; weeks start on Monday.
			jan4 := date(y, 1, 4)
			monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
			return monday.AddDate(0, 0, 7*w), true
		}
	case 'D':
		if t, err := time.Parse("2006-01-02", b[1:]); err == nil && len(b) == 11 {
			return t.AddDate(0, 0, 1), true
		}
	}
	return time.Time{}, false
}

// PruneHistory deletes the history rows that no constraint period needs any
// more, and the oldest beyond the history's share of MaxBytes (see above).
// It runs by itself at Open and once a day; it returns how many rows went.
func (ob *Outbox) PruneHistory(ctx context.Context) (int, error) {
	if ob.isClosed() {
		return 0, fmt.Errorf("queue: prune: %w", ErrClosed)
	}
	now := ob.clk.Now()
	// Which buckets are over: a scan on a pool connection, without the lock.
	rows, err := ob.db.QueryContext(ctx, "SELECT DISTINCT bucket FROM history")
	if err != nil {
		return 0, storageErr("prune", err)
	}
	var expired, other []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return 0, storageErr("prune", err)
		}
		if b == "A" {
			continue
		}
		if end, ok := bucketEnd(b); ok {
			if !now.Before(end.Add(historyGrace)) {
				expired = append(expired, b)
			}
		} else {
			other = append(other, b)
		}
	}
	if err := rows.Close(); err != nil {
		return 0, storageErr("prune", err)
	}
	if err := rows.Err(); err != nil {
		return 0, storageErr("prune", err)
	}
	total := 0
	if len(expired) > 0 || len(other) > 0 {
		ex, _ := json.Marshal(expired)
		ot, _ := json.Marshal(other)
		n, err := ob.pruneWhere(ctx, "(bucket IN (SELECT value FROM json_each(?1)) OR (bucket IN (SELECT value FROM json_each(?2)) AND at < ?3))",
			ex, ot, now.Add(-historyKeepOther).UnixMilli())
		total += n
		if err != nil {
			return total, err
		}
	}
	// The history's share of MaxBytes: the oldest rows beyond it go.
	ob.mu.Lock()
	excess := ob.histRows - ob.o.MaxBytes/2/HistoryRowBytes
	ob.mu.Unlock()
	if excess > 0 {
		// Down to three quarters of the share, so this does not run again
		// at the next tap.
		excess += ob.o.MaxBytes / 8 / HistoryRowBytes
		var cut int64
		err := ob.db.QueryRowContext(ctx, "SELECT at FROM history ORDER BY at LIMIT 1 OFFSET ?", excess-1).Scan(&cut)
		if err == nil {
			n, err := ob.pruneWhere(ctx, "at <= ?1", cut)
			total += n
			if err != nil {
				return total, err
			}
			ob.log.Warn("queue: history over its share of max_bytes; pruned the oldest rows", "rows", n, "cut", time.UnixMilli(cut).UTC())
		}
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if !ob.closed {
		if _, err := ob.d.c.ExecContext(ctx, "DELETE FROM void WHERE at < ? AND id NOT IN (SELECT id FROM checkin)", now.Add(-voidKeep).UnixMilli()); err != nil {
			ob.log.Warn("queue: prune void records", "err", err)
		}
	}
	return total, nil
}

// pruneWhere deletes the history rows matching cond in chunks, walking the
// primary key so that each chunk starts where the last one ended.
func (ob *Outbox) pruneWhere(ctx context.Context, cond string, args ...any) (int, error) {
	q := `DELETE FROM history WHERE (chip_key, event_id, bucket, id) IN (
		SELECT chip_key, event_id, bucket, id FROM history
		WHERE (?4 IS NULL OR (chip_key, event_id, bucket, id) > (?4, ?5, ?6, ?7)) AND ` + cond + `
		ORDER BY chip_key, event_id, bucket, id LIMIT ` + strconv.Itoa(pruneChunk) + `)
		RETURNING chip_key, event_id, bucket, id`
	for len(args) < 3 {
		args = append(args, nil)
	}
	type key struct {
		chip       []byte
		ev, bucket string
		id         string
	}
	var last key
	total := 0
	for {
		ob.mu.Lock()
		if ob.closed {
			ob.mu.Unlock()
			return total, nil
		}
		n := 0
		err := ob.withRoom(ctx, "prune", func() error {
			n = 0
			next := last
			err := ob.tx(ctx, &ob.d, func() error {
				rows, err := ob.d.c.QueryContext(ctx, q, append(args[:3:3], lastArgs(last.chip, last.ev, last.bucket, last.id)...)...)
				if err != nil {
					return err
				}
				for rows.Next() {
					var k key
					if err := rows.Scan(&k.chip, &k.ev, &k.bucket, &k.id); err != nil {
						rows.Close()
						return err
					}
					n++
					if c := bytes.Compare(k.chip, next.chip); c > 0 || c == 0 && (k.ev > next.ev ||
						k.ev == next.ev && (k.bucket > next.bucket || k.bucket == next.bucket && k.id > next.id)) {
						next = k
					}
				}
				if err := rows.Close(); err != nil {
					return err
				}
				return rows.Err()
			})
			if err == nil {
				last = next
			}
			return err
		})
		if err == nil {
			ob.histRows -= int64(n)
			total += n
			ob.afterWrite(ctx)
		}
		ob.mu.Unlock()
		if err != nil {
			return total, storageErr("prune", err)
		}
		if n < pruneChunk {
			return total, nil
		}
	}
}

// prune is PruneHistory for the maintainer: errors are logged.
func (ob *Outbox) prune(ctx context.Context) {
	n, err := ob.PruneHistory(ctx)
	if err != nil {
		if !ob.isClosed() {
			ob.log.Warn("queue: prune history", "err", err)
		}
		return
	}
	if n > 0 {
		ob.log.Info("queue: pruned history rows no constraint period needs", "rows", n)
	}
}

// lastArgs binds the key a chunk starts after: NULL before the first.
func lastArgs(chip []byte, ev, bucket, id string) []any {
	if chip == nil {
		return []any{nil, nil, nil, nil}
	}
	return []any{chip, ev, bucket, id}
}
