package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// The writes of a set-based batch (pgbatch.go) go out on one pipeline of
// the connection, as the second pass makes them: the ledger rows in parts
// of writePart, each sent as soon as it is decided, so that the server
// inserts one part while the rules decide the next; then the events the
// batch created, its cards' points and enrolments, and COMMIT, with the one
// synchronisation point of the pipeline. The results are read at the end,
// in order. A batch's Go work and the server's used to take turns; on a
// host of two processors they now overlap for the inserts' part. COMMIT
// runs only if every write before it succeeded: the server skips what
// follows an error until the synchronisation point.
//
// pgx's batches encode their arguments themselves and send them only all
// at once, so this is pgconn's pipeline, with the statements prepared by
// name on the connection and their parameters encoded by params. Named
// statements live in the server's session: a pooler in transaction mode
// must carry protocol-level prepared statements (PgBouncer's
// max_prepared_statements), whatever default_query_exec_mode the DSN sets.

// writePart is how many ledger rows one insert statement carries. Smaller
// parts overlap more of the rules with the server, and each costs a
// statement. BenchmarkIngestVsBare at 20 480 checkins in batches of 256,
// five interleaved runs each (2026-12-03), median ×bare: one part 0.565,
// 128 rows 0.610, 64 rows 0.635 (0.628 in a second set, beside 32 rows at
// 0.621).
const writePart = 64

// pgWrite is a statement the writes prepare: its index in pgWrites.
type pgWrite int

const (
	wInsCheckins pgWrite = iota
	wInsEvents
	wAddPoints
	wEnroll
)

// pgWrites name each write statement on the connection and in errors.
var pgWrites = [...]struct {
	name, what string
	sql        func(*pgStmts) string
}{
	wInsCheckins: {"kiosk_ingest_ins_checkins", "insert checkins", func(s *pgStmts) string { return s.insCheckins }},
	wInsEvents:   {"kiosk_ingest_ins_events", "create events", func(s *pgStmts) string { return s.insEvents }},
	wAddPoints:   {"kiosk_ingest_add_points", "add points", func(s *pgStmts) string { return s.addPoints }},
	wEnroll:      {"kiosk_ingest_enroll", "enroll", func(s *pgStmts) string { return s.enroll }},
}

// writer is one batch's pipeline of writes.
type writer struct {
	b     *batch
	c     *pgx.Conn
	pl    *pgconn.Pipeline
	p     *params
	steps []writeStep
	// sds are the statements as prepared on this connection.
	sds [len(pgWrites)]*pgconn.StatementDescription
	// done: finish or abort has ended the pipeline.
	done bool
}

// writeStep is a statement sent: what it does, the meaning of its errors of
// its own (a race the batch is run again for), if any, and the command tag
// it must answer, if one is required.
type writeStep struct {
	what   string
	mapped func(*pgconn.PgError) error
	tag    string
}

var binaryParams = []int16{pgtype.BinaryFormatCode} // one code: every parameter

// startWrites prepares the write statements on c (once per connection: pgx
// keeps them by name; a round trip each the first time) and opens the
// pipeline, which has the connection until finish or abort.
func (b *batch) startWrites(c *pgx.Conn) (*writer, error) {
	p, _ := b.l.params.Get().(*params)
	if p == nil {
		p = new(params)
	}
	w := &writer{b: b, c: c, p: p}
	for i, s := range pgWrites {
		sd, err := c.Prepare(b.ctx, s.name, s.sql(&b.l.pg))
		if err != nil {
			w.release()
			return nil, fmt.Errorf("ingest: prepare %s: %w", s.what, err)
		}
		w.sds[i] = sd
	}
	// The pipeline watches the batch's context: cancelled between parts, it
	// ends the connection (pgx's deadline on the socket) rather than roll
	// back; the server then aborts the transaction, and nothing is booked.
	w.pl = c.PgConn().StartPipeline(b.ctx)
	return w, nil
}

// send queues statement s with the parameters encoded in w.p since its
// reset. The server's description of the statement must name the types
// encoded: a statement edited without its encoding fails here, never as
// bytes the server reads as another type.
func (w *writer) send(s pgWrite, mapped func(*pgconn.PgError) error) error {
	sd, what := w.sds[s], pgWrites[s].what
	if !slices.Equal(sd.ParamOIDs, w.p.oids) {
		return fmt.Errorf("ingest: %s: the statement takes types %v, the batch encoded %v", what, sd.ParamOIDs, w.p.oids)
	}
	w.pl.SendQueryStatement(sd, w.p.values(), binaryParams, nil)
	w.steps = append(w.steps, writeStep{what: what, mapped: mapped})
	return nil
}

// rows encodes r's columns as insCheckins takes them, after a reset.
func (p *params) rows(r *checkinRows) {
	p.reset()
	p.text(r.id)
	p.text(r.device)
	p.int8(r.seq)
	p.text(r.chip)
	p.text(r.event)
	p.text(r.counter)
	p.text(r.status)
	p.int4(r.points)
	p.text(r.tapped)
	p.bool(r.synced)
	p.int8(r.dated)
	p.text(r.received)
	p.bytea(r.result)
}

// part queues r's rows, sends them to the server now rather than with the
// rest, and empties r.
func (w *writer) part(r *checkinRows) error {
	if err := w.checkins(r); err != nil {
		return err
	}
	return w.pl.Flush()
}

// checkins queues r's rows and empties r.
func (w *writer) checkins(r *checkinRows) error {
	if len(r.id) == 0 {
		return nil
	}
	b := w.b
	w.p.rows(r)
	// No ON CONFLICT: the batch read its ids already, so a conflict is a
	// concurrent batch's (errIDRace), or it did not read them and runs
	// again (errIDUnread); a plain insert is cheaper than a speculative one.
	err := w.send(wInsCheckins, func(pe *pgconn.PgError) error {
		if pe.Code == "23505" && pe.ConstraintName == "checkins_pkey" {
			if b.idsUnread {
				b.l.calm.Store(0)
				return fmt.Errorf("%w: %v", errIDUnread, pe)
			}
			return fmt.Errorf("%w: %v", errIDRace, pe)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.reset()
	return nil
}

// finish sends the rows left in r, the events the batch created, its
// cards' points and enrolments and COMMIT, and reads every result: the
// first error is returned.
func (w *writer) finish(p *preloaded, r *checkinRows, events []*Event) error {
	if err := w.checkins(r); err != nil {
		w.abort()
		return err
	}
	if err := w.rest(p, events); err != nil {
		w.abort()
		return err
	}
	w.done = true
	defer w.release()
	// A COMMIT of a transaction already aborted answers ROLLBACK, without
	// an error: never a booking.
	w.pl.SendQueryParams("COMMIT", nil, nil, nil, nil)
	w.steps = append(w.steps, writeStep{what: "commit", tag: "COMMIT"})
	if err := w.pl.Sync(); err != nil {
		return fmt.Errorf("ingest: writes: %w", err)
	}
	var first error
	var pe *pgconn.PgError
	for _, s := range w.steps {
		res, err := w.pl.GetResults()
		if err == nil {
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				err = fmt.Errorf("a result %T", res)
			} else {
				var tag pgconn.CommandTag
				tag, err = rr.Close()
				if err == nil && s.tag != "" && tag.String() != s.tag {
					err = fmt.Errorf("the server answered %q", tag.String())
				}
			}
		}
		if err != nil {
			if s.mapped != nil && errors.As(err, &pe) {
				first = s.mapped(pe)
			}
			if first == nil {
				first = fmt.Errorf("ingest: %s: %w", s.what, err)
			}
			break
		}
	}
	if err := w.pl.Close(); first == nil && err != nil {
		first = fmt.Errorf("ingest: writes: %w", err)
	}
	// A statement the server no longer has under its name (deallocated
	// behind pgx's back, or made stale by a migration that changed what
	// it returns): pgx would keep handing out the name, so the connection
	// is closed (the pool then opens another) and the batch runs again.
	if errors.As(first, &pe) && (pe.Code == "26000" || pe.Code == "0A000") {
		w.c.Close(context.Background())
		first = fmt.Errorf("%w: %v", errStatementGone, first)
	}
	return first
}

// errStatementGone: a write statement prepared by name was gone from the
// connection, which was closed; running the batch again, on another
// connection, is right (dialect.retryable).
var errStatementGone = errors.New("ingest: a prepared write statement is gone from the connection")

// rest sends the events, points and enrolments (after the ledger rows).
func (w *writer) rest(p *preloaded, events []*Event) error {
	q := w.p
	if len(events) > 0 {
		sort.Slice(events, func(i, j int) bool { return events[i].ID < events[j].ID })
		id, period := make([]string, len(events)), make([]string, len(events))
		pts, vol := make([]int32, len(events)), make([]int32, len(events))
		for i, e := range events {
			id[i], period[i], pts[i], vol[i] = e.ID, e.Period, int32(e.Points), int32(e.Volume)
		}
		q.reset()
		q.text(id)
		q.int4(pts)
		q.text(period)
		q.int4(vol)
		if err := w.send(wInsEvents, nil); err != nil {
			return err
		}
	}
	var add, enroll []string
	for chip, h := range p.holders {
		switch {
		case h.create:
			enroll = append(enroll, chip)
		case h.delta != 0:
			add = append(add, chip)
		}
	}
	if len(add) > 0 {
		sort.Strings(add)
		tids, was, pts := make([]pgtype.TID, len(add)), make([]int32, len(add)), make([]int32, len(add))
		for i, chip := range add {
			h := p.holders[chip]
			// total is what was read plus what the batch added (delta).
			tids[i], was[i], pts[i] = h.tid, int32(h.total-h.delta), int32(h.delta)
		}
		q.reset()
		if err := q.tid(tids); err != nil {
			return err
		}
		q.text(add)
		q.int4(was)
		q.int4(pts)
		err := w.send(wAddPoints, func(pe *pgconn.PgError) error {
			if pe.Code == "KI001" {
				return fmt.Errorf("%w: %v", errHolderMoved, pe)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(enroll) > 0 {
		sort.Strings(enroll)
		pts, created := make([]int32, len(enroll)), make([]string, len(enroll))
		for i, chip := range enroll {
			h := p.holders[chip]
			pts[i], created[i] = int32(h.delta), h.createdAt
		}
		q.reset()
		q.text(enroll)
		q.int4(pts)
		q.text(created)
		if err := w.send(wEnroll, nil); err != nil {
			return err
		}
	}
	return nil
}

// abort ends the pipeline after an error of the batch's own, with what was
// sent undone by the caller's rollback (the transaction is still open); a
// pipeline finish has ended is left as it is.
func (w *writer) abort() {
	if w.done {
		return
	}
	w.done = true
	if w.pl.Sync() == nil {
		w.pl.Close()
	}
	w.release()
}

func (w *writer) release() {
	if w.p != nil {
		w.p.reset()
		w.b.l.params.Put(w.p)
		w.p = nil
	}
}
