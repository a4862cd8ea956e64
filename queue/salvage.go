package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Salvaging a set-aside database: it is opened read-only (nothing is
// written to it or its WAL; SQLite may make a -shm beside it) and read row
// by row, so that a corrupt page costs only the rows on it.
//
// The checkin table is read in seq order. When a read fails, the scan looks
// for the next readable seq at doubling distances (a lookup that lands past
// the bad pages works again), then reads each seq between the last good one
// and that point on its own: rows on good pages in between are kept, rows on
// the bad pages are lost.

// salvageRow is one checkin read from a damaged database.
type salvageRow struct {
	seq      int64
	id       string
	queuedAt int64
	chipKey  []byte
	event    string
	bucket   string
	body     []byte
}

const salvageCols = "seq, id, queued_at, chip_key, event_id, bucket, body"

// scanStats says how a scan went.
type scanStats struct {
	read     int   // rows read (valid or not)
	invalid  int   // rows read that are not checkins (garbage on a bad page)
	failed   int   // reads that failed
	maxSeq   int64 // highest seq read
	complete bool  // the table was read to its end without a failure
}

// scanCheckins calls fn for every checkin row it can read from db, in seq
// order. hint is a seq known to be at or above every seq in the table (0:
// unknown).
func scanCheckins(ctx context.Context, db *sql.DB, hint int64, fn func(salvageRow) error) (scanStats, error) {
	var st scanStats
	var metaSeq, maxSeq sql.NullInt64
	if db.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'last_seq'").Scan(&metaSeq) != nil {
		metaSeq = sql.NullInt64{}
	}
	if db.QueryRowContext(ctx, "SELECT max(seq) FROM checkin").Scan(&maxSeq) != nil {
		maxSeq = sql.NullInt64{}
	}
	hi := max(hint, metaSeq.Int64, maxSeq.Int64)
	if hi == 0 {
		hi = 1 << 40
	}
	take := func(r salvageRow) error {
		st.read++
		if r.seq <= 0 || !protocol.ValidID(r.id) || !json.Valid(r.body) {
			st.invalid++
			return nil
		}
		st.maxSeq = max(st.maxSeq, r.seq)
		return fn(r)
	}
	scanRow := func(rows *sql.Rows) (salvageRow, error) {
		var r salvageRow
		err := rows.Scan(&r.seq, &r.id, &r.queuedAt, &r.chipKey, &r.event, &r.bucket, &r.body)
		return r, err
	}
	// rangeScan reads seq > after in order until the end or a failure; it
	// returns the last seq read.
	rangeScan := func(after int64) (int64, error) {
		rows, err := db.QueryContext(ctx, "SELECT "+salvageCols+" FROM checkin WHERE seq > ? ORDER BY seq", after)
		if err != nil {
			return after, err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRow(rows)
			if err != nil {
				return after, err
			}
			after = r.seq
			if err := take(r); err != nil {
				return after, err
			}
		}
		return after, rows.Err()
	}
	// probe reads each seq in (from, to] on its own; with giveUp, it stops
	// after maxMisses seqs in a row that are not there or not readable.
	probe := func(from, to int64, giveUp bool) error {
		misses := 0
		for s := from + 1; s <= to && !(giveUp && misses >= maxMisses); s++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			misses++
			rows, err := db.QueryContext(ctx, "SELECT "+salvageCols+" FROM checkin WHERE seq = ?", s)
			if err != nil {
				st.failed++
				continue
			}
			if rows.Next() {
				if r, err := scanRow(rows); err == nil {
					misses = 0
					if err := take(r); err != nil {
						rows.Close()
						return err
					}
				} else {
					st.failed++
				}
			}
			if rows.Err() != nil {
				st.failed++
			}
			rows.Close()
		}
		return nil
	}
	cursor := int64(0)
	for {
		last, err := rangeScan(cursor)
		if err == nil {
			st.complete = st.failed == 0
			return st, nil
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if errors.Is(err, errStop) {
			return st, err
		}
		st.failed++
		cursor = last
		// Where does the table read again?
		resumed := false
		for step := int64(1); cursor+step <= hi; step *= 2 {
			var next int64
			err := db.QueryRowContext(ctx, "SELECT seq FROM checkin WHERE seq > ? ORDER BY seq LIMIT 1", cursor+step).Scan(&next)
			if errors.Is(err, sql.ErrNoRows) {
				if err := probe(cursor, min(cursor+step, hi), false); err != nil {
					return st, err
				}
				return st, nil
			}
			if err != nil {
				continue
			}
			if err := probe(cursor, cursor+step, false); err != nil {
				return st, err
			}
			cursor = next - 1
			resumed = true
			break
		}
		if !resumed {
			// Nothing reads beyond the failure (a truncated file): try each
			// seq after it until maxMisses in a row are not there.
			return st, probe(cursor, hi, true)
		}
	}
}

var errStop = errors.New("stop")

// maxMisses is how many seqs in a row a salvage tries past the last
// readable one before it concludes the rest is gone.
const maxMisses = 4096

// openSalvage opens a database read-only for Salvage and CountPending.
func openSalvage(path string) (*sql.DB, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() < 100 {
		return nil, fmt.Errorf("%s holds %d bytes: no database in it", path, st.Size())
	}
	// writable_schema lets SQLite read a file shorter than its header says
	// (a truncated one) up to where it ends; the connection is read-only all
	// the same.
	db, err := sql.Open("sqlite", roDSN(path)+"&_pragma=writable_schema(1)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// voidedIn reads the ids a damaged database had voided (best effort).
func voidedIn(ctx context.Context, db *sql.DB) map[string]bool {
	m := map[string]bool{}
	rows, err := db.QueryContext(ctx, "SELECT id FROM void")
	if err != nil {
		return m
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			m[id] = true
		}
	}
	return m
}

// CountPending counts the pending checkins in the queue database at path,
// best effort and without writing to it (any database, set aside or not;
// not while an outbox has it open for writing, which it may not see): what
// a factory reset gives up. On a damaged database it counts the rows it can
// read and returns them with an error saying the count may be short.
func CountPending(path string) (int, error) {
	db, err := openSalvage(path)
	if err != nil {
		return 0, fmt.Errorf("queue: count pending in %s: %w", path, err)
	}
	defer db.Close()
	ctx := context.Background()
	voids := voidedIn(ctx, db)
	var n int
	var check string
	// count(*) may read only the id index: trust it on an intact file only.
	if db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check) == nil && check == "ok" &&
		db.QueryRowContext(ctx, "SELECT count(*) FROM checkin WHERE id NOT IN (SELECT id FROM void)").Scan(&n) == nil {
		return n, nil
	}
	n = 0
	st, err := scanCheckins(ctx, db, 0, func(r salvageRow) error {
		if !voids[r.id] {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("queue: count pending in %s: %d readable, more may be lost: %w", path, n, err)
	}
	if !st.complete {
		return n, fmt.Errorf("queue: count pending in %s: %d readable; %d reads failed, so more may be lost", path, n, st.failed)
	}
	return n, nil
}

// Salvage copies every readable pending checkin of the database at src (a
// set-aside queue: see SetAside) into dst, keeping its id, seq, payload and
// tap time, and its history row; it also copies what it can read of src's
// history, so that the pre-filter keeps counting. Central deduplicates by
// id, so a checkin it already booked is answered again, not booked twice.
// Taps src had voided (failed commits) are not copied.
//
// src is opened read-only and never written; it is read row by row, so that
// a corrupt page loses only the rows on it. salvaged counts the checkins
// copied (a checkin dst already holds is not counted again); it is valid
// also when err is not nil, which then says what could not be read. dst's
// seq continues above every seq salvaged.
//
// Call it before a Forwarder reads dst: the salvaged checkins keep their
// (lower) seq, and a forwarder already past it would not see them until
// its next start.
func Salvage(src string, dst *Outbox) (salvaged int, err error) {
	db, err := openSalvage(src)
	if err != nil {
		return 0, fmt.Errorf("queue: salvage %s: %w", src, err)
	}
	defer db.Close()
	ctx := context.Background()
	voids := voidedIn(ctx, db)
	dst.mu.Lock()
	hint := dst.lastSeq
	dst.mu.Unlock()
	var batch []salvageRow
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := dst.insertSalvaged(ctx, batch)
		salvaged += n
		batch = batch[:0]
		return err
	}
	st, err := scanCheckins(ctx, db, hint, func(r salvageRow) error {
		if voids[r.id] {
			return nil
		}
		batch = append(batch, r)
		if len(batch) >= pruneChunk {
			if err := flush(); err != nil {
				return fmt.Errorf("%w: %w", errStop, err)
			}
		}
		return nil
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return salvaged, fmt.Errorf("queue: salvage %s: %d checkins copied: %w", src, salvaged, err)
	}
	hist, herr := dst.copyHistory(ctx, db)
	dst.mergeOutcomes(ctx, db)
	var metaSeq sql.NullInt64
	if db.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'last_seq'").Scan(&metaSeq) != nil {
		metaSeq = sql.NullInt64{}
	}
	if err := dst.raiseSeq(ctx, max(st.maxSeq, metaSeq.Int64)); err != nil {
		return salvaged, fmt.Errorf("queue: salvage %s: %d checkins copied; raise seq: %w", src, salvaged, err)
	}
	dst.log.Info("queue: salvaged a set-aside database", "src", src, "checkins", salvaged, "history", hist,
		"rowsRead", st.read, "invalidRows", st.invalid, "failedReads", st.failed)
	switch {
	case !st.complete:
		return salvaged, fmt.Errorf("queue: salvage %s: %d checkins copied; %d reads failed and %d rows were garbage: the checkins on those pages are lost",
			src, salvaged, st.failed, st.invalid)
	case herr != nil:
		return salvaged, fmt.Errorf("queue: salvage %s: %d checkins copied; history only in part (%d rows): %w", src, salvaged, hist, herr)
	}
	return salvaged, nil
}

// insertSalvaged writes salvaged checkins (and their history rows) in one
// transaction, skipping those dst already has.
func (ob *Outbox) insertSalvaged(ctx context.Context, rows []salvageRow) (int, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return 0, ErrClosed
	}
	var n, hist int
	var bytes, maxSeq int64
	err := ob.withRoom(ctx, "salvage", func() error {
		n, hist, bytes, maxSeq = 0, 0, 0, 0
		return ob.tx(ctx, &ob.w, func() error {
			next := ob.lastSeq
			for _, r := range rows {
				res, err := ob.w.c.ExecContext(ctx, "INSERT OR IGNORE INTO checkin ("+salvageCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
					r.seq, r.id, r.queuedAt, r.chipKey, r.event, r.bucket, r.body)
				if err != nil {
					return err
				}
				if k, _ := res.RowsAffected(); k == 0 {
					var have int
					if err := ob.w.c.QueryRowContext(ctx, "SELECT count(*) FROM checkin WHERE id = ?", r.id).Scan(&have); err != nil {
						return err
					}
					if have > 0 {
						continue // salvaged before
					}
					// Its seq is taken by another checkin (dst continued from
					// a lower seq: no seq file): it goes last, under a new seq;
					// its payload, which central reads, is unchanged.
					next = max(next, maxSeq) + 1
					if _, err := ob.w.c.ExecContext(ctx, "INSERT INTO checkin ("+salvageCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
						next, r.id, r.queuedAt, r.chipKey, r.event, r.bucket, r.body); err != nil {
						return err
					}
					r.seq = next
				}
				n++
				bytes += int64(len(r.body)) + EntryOverhead
				maxSeq = max(maxSeq, r.seq)
				if r.bucket != "" {
					res, err := ob.w.c.ExecContext(ctx, "INSERT OR IGNORE INTO history (chip_key, event_id, bucket, id, at) VALUES (?, ?, ?, ?, ?)",
						r.chipKey, r.event, r.bucket, r.id, r.queuedAt)
					if err != nil {
						return err
					}
					if k, _ := res.RowsAffected(); k > 0 {
						hist++
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	ob.pending += n
	ob.bytes += bytes
	ob.histRows += int64(hist)
	ob.lastSeq = max(ob.lastSeq, maxSeq)
	// Salvaged checkins keep their older seq, which fresh does not hold:
	// reads at or below lastSeq go to the database.
	ob.freshMu.Lock()
	clear(ob.fresh)
	ob.fresh, ob.freshAfter = nil, ob.lastSeq
	ob.freshMu.Unlock()
	ob.afterWrite(ctx)
	return n, nil
}

// copyHistory copies the history rows of src it can read, until the first
// failure.
func (ob *Outbox) copyHistory(ctx context.Context, src *sql.DB) (int, error) {
	rows, err := src.QueryContext(ctx, "SELECT chip_key, event_id, bucket, id, at FROM history")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	type h struct {
		key            []byte
		ev, bucket, id string
		at             int64
	}
	total := 0
	var batch []h
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ob.mu.Lock()
		defer ob.mu.Unlock()
		if ob.closed {
			return ErrClosed
		}
		n := 0
		err := ob.withRoom(ctx, "salvage", func() error {
			n = 0
			return ob.tx(ctx, &ob.w, func() error {
				for _, x := range batch {
					res, err := ob.w.c.ExecContext(ctx, "INSERT OR IGNORE INTO history (chip_key, event_id, bucket, id, at) VALUES (?, ?, ?, ?, ?)",
						x.key, x.ev, x.bucket, x.id, x.at)
					if err != nil {
						return err
					}
					if k, _ := res.RowsAffected(); k > 0 {
						n++
					}
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		ob.histRows += int64(n)
		total += n
		batch = batch[:0]
		ob.afterWrite(ctx)
		return nil
	}
	for rows.Next() {
		var x h
		if err := rows.Scan(&x.key, &x.ev, &x.bucket, &x.id, &x.at); err != nil {
			flush()
			return total, err
		}
		if len(x.key) != 16 || !protocol.ValidID(x.id) {
			continue
		}
		batch = append(batch, x)
		if len(batch) >= pruneChunk {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if err := flush(); err != nil {
		return total, err
	}
	return total, rows.Err()
}

// raiseSeq makes the outbox continue above seq (meta and the seq file).
func (ob *Outbox) raiseSeq(ctx context.Context, seq int64) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return ErrClosed
	}
	if seq > ob.lastSeq {
		ob.lastSeq = seq
	}
	if ob.lastSeq > ob.metaSeq {
		if _, err := ob.w.c.ExecContext(ctx, "UPDATE meta SET v = ? WHERE k = 'last_seq' AND v < ?", ob.lastSeq, ob.lastSeq); err != nil {
			return err
		}
		ob.metaSeq = ob.lastSeq
	}
	if ob.o.SeqFile != "" && ob.lastSeq+SeqBlock/4 > ob.reserved {
		return ob.reserveSeq(ob.lastSeq + SeqBlock)
	}
	return nil
}
