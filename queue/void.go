package queue

import (
	"context"
	"maps"
)

// A tap whose commit failed must never be forwarded: the kiosk answered it
// storage-error and sent the passholder to the desk.
//
// SQLite appends a transaction's frames to the WAL and then fsyncs; when
// the fsync fails the commit fails, but the frames, commit marker included,
// may already be in the file (the page cache, or the disk). This process
// does not see them (SQLite updates the WAL index only after a good sync),
// but a crash before the next commit lets recovery at the next open replay
// them: the tap comes back and would be booked.
//
// So a failed Enqueue voids its tap before it returns:
//
//  1. in memory: the id goes into a set that Pending never returns, so this
//     process cannot forward it whatever the disk does;
//  2. on disk: a transaction of its own (synchronous=FULL, on the same
//     connection) records the id in the void table and deletes the checkin
//     and history rows should they be visible. SQLite writes it where the
//     failed frames were (the WAL index still ends before them), so once it
//     is in the file the failed transaction is overwritten and can no longer
//     be recovered; were it recovered anyway (another SQLite, another order
//     of events), the void row is there with it;
//  3. at every Open, any checkin listed in void is deleted before anything
//     reads the queue.
//
// While step 2 has not succeeded (the disk keeps failing), Enqueue tries it
// again first and refuses the tap when it still fails: a tap accepted now
// would be a commit on a disk that cannot void the earlier one.

// voidRec is what it takes to void a failed tap.
type voidRec struct {
	id            string
	seq           int64
	key           []byte
	event, bucket string
}

// void voids a failed tap: in memory at once, on disk if it can. ob.mu held.
func (ob *Outbox) void(ctx context.Context, v voidRec, cause error) {
	m := maps.Clone(*ob.voids.Load())
	m[v.id] = true
	ob.voids.Store(&m)
	ob.unvoided = append(ob.unvoided, v)
	ob.log.Error("queue: a tap's commit failed; voiding it so that it is never forwarded",
		"seq", v.seq, "id", v.id, "err", cause)
	if err := ob.resolveVoids(ctx); err != nil {
		ob.log.Error("queue: voiding the failed tap on disk failed too; taps are refused until it succeeds",
			"seq", v.seq, "id", v.id, "err", err)
	}
}

// resolveVoids writes the void records not yet on disk. ob.mu held.
func (ob *Outbox) resolveVoids(ctx context.Context) error {
	for len(ob.unvoided) > 0 {
		v := ob.unvoided[0]
		var gone int64
		var body int64
		err := ob.tx(ctx, &ob.w, func() error {
			if _, err := ob.stmts.insVoid.ExecContext(ctx, v.id, v.seq, ob.clk.Now().UnixMilli()); err != nil {
				return err
			}
			rows, err := ob.stmts.voidCheckin.QueryContext(ctx, v.id)
			if err != nil {
				return err
			}
			for rows.Next() {
				gone++
				if err := rows.Scan(&body); err != nil {
					rows.Close()
					return err
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if v.bucket != "" {
				if _, err := ob.stmts.voidHistory.ExecContext(ctx, v.key, v.event, v.bucket, v.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if gone > 0 {
			// Visible after all (and so, in this process, never counted).
			ob.log.Warn("queue: the failed tap was in the database after all; deleted", "seq", v.seq, "id", v.id)
		}
		ob.unvoided = ob.unvoided[1:]
		ob.log.Info("queue: failed tap voided on disk", "seq", v.seq, "id", v.id)
	}
	ob.unvoided = nil
	return nil
}

// dropVoided deletes, at open, checkins that a recovery brought back
// although they were voided, and their history rows. Called before anything
// else uses the queue.
func (ob *Outbox) dropVoided() error {
	ctx := context.Background()
	var n int
	if err := ob.w.c.QueryRowContext(ctx, "SELECT count(*) FROM checkin WHERE id IN (SELECT id FROM void)").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	var body, hist int64
	err := ob.tx(ctx, &ob.w, func() error {
		if err := ob.w.c.QueryRowContext(ctx, "SELECT coalesce(sum(length(body)), 0) FROM checkin WHERE id IN (SELECT id FROM void)").Scan(&body); err != nil {
			return err
		}
		if _, err := ob.w.c.ExecContext(ctx, "DELETE FROM checkin WHERE id IN (SELECT id FROM void)"); err != nil {
			return err
		}
		r, err := ob.w.c.ExecContext(ctx, "DELETE FROM history WHERE id IN (SELECT id FROM void)")
		if err != nil {
			return err
		}
		hist, _ = r.RowsAffected()
		return nil
	})
	if err != nil {
		return err
	}
	ob.pending -= n
	ob.bytes -= body + int64(n)*EntryOverhead
	ob.histRows -= hist
	ob.log.Warn("queue: deleted checkins of failed taps that a recovery brought back", "n", n)
	return nil
}
