package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/uitpas/tap-kiosk/protocol"
)

// The set-based path of the PostgreSQL ledger. Per checkin, the rules of
// process.go cost a few round trips to the server (the boot, the
// assignment, the passholder and its count, the insert, the points), about
// three for a plain tap: the server waits on the network more than it
// works. Here a batch costs a dozen statements whatever its size: every
// read of the rules is done for the whole batch first (arrays and unnest,
// one statement per table), the rules run in memory on what was read, and
// every write is one statement per table again (the ledger rows one per
// part of writePart, sent while the rules decide the next: pgwrite.go).
// The rules themselves are
// the same code (batch.decide and what it calls), so both dialects answer
// alike; what differs is only where decide's lookups are answered from.
//
// The guarantees of the package doc hold unchanged: the chips' advisory
// locks are taken first, in one statement, so that everything read after
// them is committed and stays so until this transaction ends; the reads of
// this path are the reads the per-checkin path would have made, only
// earlier, and what the batch itself writes is applied to them in memory
// in batch order (a card's total, its saved checkins, a repeated id). Two
// things can still change under the batch. A checkin id inserted by another
// transaction that holds it with another chip (or with an invalid chip,
// which takes no lock): the insert then finds the id taken; the batch is
// rolled back and run again (errIDRace), and its second run reads the
// other transaction's row as a replay, as the per-checkin path would have
// answered it. And a passholder set or blocked by hand (SetPassholder,
// SetBlocked, which take no chip lock): the points' update then misses the
// row it read (errHolderMoved), and the second run decides on the change,
// so that the Result's total is the one the ledger keeps.
//
// Two reads are saved where they rarely find anything new. A batch whose
// forerunners met no id answered already (calmBatches) does not read its
// ids: a replay or a collision in it fails its insert as a concurrent
// batch's would, and it runs again with its ids read (errIDUnread). And the
// assignments, which change when central decides, not with every batch,
// are kept between batches for one version of their table, which each
// batch reads after its locks (assigncache.go).
//
// A round trip is saved too: the counts of saved checkins the constraint
// needs depend on the tap's date and its assignment, known before anything
// is read for most batches (synced clocks, assignments cached), so the
// rules' first pass runs once before the preload (foresee) and the counts
// it finds are read in the preload's pipeline, after the locks like every
// other read. What it could not foresee is read after, as before; when it
// followed every checkin on what the preload then read (no event looked
// up, every pair's assignments in the cache and their version unchanged,
// each boot as the batch has it), the first pass is not run again.

// errIDRace: a checkin id was inserted by a concurrent transaction after the
// batch read the ids. Running the batch again is right (dialect.retryable).
var errIDRace = errors.New("ingest: checkin id taken by a concurrent batch")

// errIDUnread: a batch that did not read its ids (pgbatch's idsUnread) had
// one answered already. Running it again, with its ids read, is right.
var errIDUnread = errors.New("ingest: a checkin id answered already, in a batch that did not read its ids")

// calmBatches: after this many batches in a row that met no checkin id
// answered already, the next ones do not read their ids first. Replays come
// in runs (a kiosk resends its window after a reconnect), so the first one
// met makes the batches read them again.
const calmBatches = 8

// errHolderMoved: a passholder row read by the batch was changed before the
// batch added its points, by a writer that takes no chip lock (SetPassholder,
// SetBlocked). The batch decided on what it read; running it again decides on
// the change (dialect.retryable).
var errHolderMoved = errors.New("ingest: a passholder changed under the batch")

// errUnforeseen ends a checkin's foreseeing pass at a lookup that was not
// read yet: its count is then read after the preload, as it was before.
var errUnforeseen = errors.New("ingest: not known before the preload")

// errCounted ends a checkin's first pass as soon as its count is known:
// nothing after it in decide adds a read.
var errCounted = errors.New("ingest: count recorded")

// pgStmts are the set-based path's statements. They go to the server in
// pipelines: the reads in one round trip (a pgx batch, each prepared once
// per connection by pgx's statement cache), the writes in another
// (pgconn's pipeline, each prepared by name: pgwrite.go).
type pgStmts struct {
	upBoots, selIDs, selHolders, selBoots, selAssigns, selAssignVer, selEvents, selCounts,
	insCheckins, insEvents, addPoints, enroll string
}

// preparePG sets the statements and has the server parse each once, so that
// a broken one fails Open rather than the first batch.
func (l *Ledger) preparePG() error {
	l.pg = pgStmts{
		// Deduplicated and sorted by latestBoots: one row per key, taken in
		// key order.
		upBoots: `INSERT INTO boots (device_id, boot_id, uptime_ms, received_ms)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
			ON CONFLICT (device_id, boot_id) DO UPDATE SET uptime_ms = excluded.uptime_ms, received_ms = excluded.received_ms
			WHERE excluded.uptime_ms > boots.uptime_ms`,
		selIDs: `SELECT id, device_id, result FROM checkins WHERE id = ANY($1::text[])`,
		// With each row's ctid, the address addPoints updates it at.
		selHolders: `SELECT chip_number, total_points, blocked, ctid FROM passholders WHERE chip_number = ANY($1::text[])`,
		selBoots: `SELECT b.device_id, b.boot_id, b.uptime_ms, b.received_ms
			FROM boots AS b JOIN unnest($1::text[], $2::text[]) AS k(d, i) ON b.device_id = k.d AND b.boot_id = k.i`,
		// The columns of selAssign, newest first per key.
		selAssigns: `SELECT a.device_id, a.serial, a.event_id, a.counter_id, a.points, a.period, a.volume,
			a.valid_from_ms, a.valid_until_ms, a.assigned_ms, a.replaced_ms
			FROM assignments AS a JOIN unnest($1::text[], $2::text[]) AS k(d, e) ON a.device_id = k.d AND a.event_id = k.e
			ORDER BY a.device_id, a.event_id, a.serial DESC`,
		// The version of the assignments the cache holds for (assigncache.go).
		selAssignVer: `SELECT v FROM assignments_version`,
		selEvents:    `SELECT id, points, period, volume, valid_from_ms, valid_until_ms FROM events WHERE id = ANY($1::text[])`,
		// selHolderSaved's count, for many (chip, event, period) at once;
		// each is an index range of checkins_saved.
		selCounts: `SELECT k.i, (SELECT count(*) FROM checkins AS c WHERE c.chip_number = k.chip AND c.event_id = k.ev
			AND c.status = 'saved' AND c.dated_ms >= k.f AND c.dated_ms < k.u)
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS k(chip, ev, f, u, i)`,
		// In batch order, so that booked (the export's order) follows it.
		// No ON CONFLICT: the batch read its ids already, so a conflict is
		// a concurrent batch's (errIDRace), or it did not read them and
		// runs again (errIDUnread); a plain insert is cheaper than a
		// speculative one.
		insCheckins: `INSERT INTO checkins (id, device_id, seq, chip_number, event_id, counter_id, status, points,
			tapped_at, clock_synced, dated_ms, received_at, result)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::int[], $9::text[], $10::bool[], $11::bigint[], $12::text[], $13::bytea[])`,
		insEvents: `INSERT INTO events (id, points, period, volume)
			SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[]) ON CONFLICT (id) DO NOTHING`,
		// One row per card (the batch's points summed), sorted: addPoints
		// for the cards that were passholders already (an update, not an
		// insert that conflicts), enroll for those the batch enrolled.
		// addPoints reaches each row at the ctid selHolders read, not
		// through the primary key a second time (the ledger +0 – 4 % in
		// BenchmarkIngestVsBare, four interleaved pairs), and only while it
		// holds what the batch
		// read (the chip, the total, not blocked): a row changed since,
		// waited on or not, is left as it is, whether or not the server
		// rechecks the ctid of a row it waited on (PostgreSQL 15 does; the
		// values hold on any version). Fewer rows updated than sent fail the
		// transaction in the server (ingest_points_added, migration 0005),
		// so that the COMMIT queued after it does not run (errHolderMoved).
		addPoints: `WITH u AS (UPDATE passholders AS p SET total_points = p.total_points + u.d
			FROM unnest($1::tid[], $2::text[], $3::int[], $4::int[]) AS u(t, c, was, d)
			WHERE p.ctid = u.t AND p.chip_number = u.c AND p.total_points = u.was AND NOT p.blocked
			RETURNING 1)
			SELECT ingest_points_added(count(*), cardinality($1)) FROM u`,
		enroll: `INSERT INTO passholders (chip_number, total_points, blocked, created_at)
			SELECT c, d, false, t FROM unnest($1::text[], $2::int[], $3::text[]) AS u(c, d, t)
			ON CONFLICT (chip_number) DO UPDATE SET total_points = passholders.total_points + excluded.total_points`,
	}
	l.ac, l.calmAfter = newAssignCache(), calmBatches
	for _, q := range []string{l.pg.upBoots, l.pg.selIDs, l.pg.selHolders, l.pg.selBoots, l.pg.selAssigns,
		l.pg.selAssignVer, l.pg.selEvents, l.pg.selCounts, l.pg.insCheckins, l.pg.insEvents, l.pg.addPoints, l.pg.enroll} {
		st, err := l.db.Prepare(q)
		if err != nil {
			return fmt.Errorf("ingest: prepare: %w", err)
		}
		st.Close()
	}
	return nil
}

// preloaded is what the set-based path read before the rules ran, and what
// the batch has decided since, applied in memory.
type preloaded struct {
	// collecting: the first pass of the rules, which only learns which
	// counts they need (count keys depend on the date and the assignment,
	// never on a count): counts are answered 0 and recorded in want.
	collecting bool
	// foreseeing: the pass before anything is read (batch.foresee), on
	// what the batch knows already; a lookup it cannot answer ends the
	// checkin's pass (errUnforeseen) rather than run a statement.
	foreseeing bool
	want       map[countKey]bool
	counts     map[countKey]int
	holders    map[string]*holderState
	boots      map[[2]string][2]int64 // (device, boot) → uptime, receipt (ms)
	// ids are the checkin ids already answered, in the ledger or earlier in
	// the batch.
	ids map[string]stored
	// saved are the batch's own saved checkins' dates, per chip and event.
	saved map[[2]string][]int64
}

type countKey struct {
	chip, event string
	from, until int64
}

type holderState struct {
	found, blocked bool
	total          int
	tid            pgtype.TID // where the row was read
	// What the batch writes: points to add; create, when the batch enrolled
	// the card, with its receipt.
	delta     int
	create    bool
	createdAt string
}

type stored struct {
	device  string
	payload []byte
}

// holderSaved is the passholder of chip (found, its total and blocked flag)
// and how many checkins of chip at event in [from, until) are saved.
func (b *batch) holderSaved(chip, event string, from, until int64) (found bool, total int, blocked bool, n int, err error) {
	p := b.pre
	if p == nil {
		var holderTotal sql.NullInt64
		var holderBlocked sql.NullBool
		if err := b.stmt(b.l.st.selHolderSaved).QueryRowContext(b.ctx, chip, event, from, until, chip).
			Scan(&holderTotal, &holderBlocked, &n); err != nil {
			return false, 0, false, 0, fmt.Errorf("ingest: passholder: %w", err)
		}
		return holderTotal.Valid, int(holderTotal.Int64), holderBlocked.Bool, n, nil
	}
	if h := p.holders[chip]; h != nil {
		found, total, blocked = h.found, h.total, h.blocked
	}
	k := countKey{chip, event, from, until}
	if p.collecting {
		p.want[k] = true
		return found, total, blocked, 0, errCounted
	}
	n, ok := p.counts[k]
	if !ok { // foreseen by neither pass: asked on its own (errOutside)
		if err := b.stmt(b.l.st.selHolderSaved).QueryRowContext(b.ctx, chip, event, from, until, chip).
			Scan(new(sql.NullInt64), new(sql.NullBool), &n); err != nil {
			return false, 0, false, 0, fmt.Errorf("ingest: passholder: %w", err)
		}
		p.counts[k] = n
	}
	for _, ms := range p.saved[[2]string{chip, event}] {
		if ms >= from && ms < until {
			n++
		}
	}
	return found, total, blocked, n, nil
}

// foreseeing: the rules run before the preload (batch.foresee), where a
// lookup not answered from memory ends the checkin's pass.
func (b *batch) foreseeing() bool { return b.pre != nil && b.pre.foreseeing }

// bootOf is the highest uptime known of a boot and when it arrived.
func (b *batch) bootOf(device, boot string) (upMs, rcvMs int64, ok bool, err error) {
	if b.pre != nil {
		if v, ok := b.pre.boots[[2]string{device, boot}]; ok {
			return v[0], v[1], true, nil
		}
		if b.foreseeing() { // a safeguard: foresee has every boot of the batch
			return 0, 0, false, errUnforeseen
		}
	}
	err = b.stmt(b.l.st.selBoot).QueryRowContext(b.ctx, device, boot).Scan(&upMs, &rcvMs)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("ingest: boot: %w", err)
	}
	return upMs, rcvMs, true, nil
}

// processSet is processOnce for PostgreSQL, set-based, in two round trips:
// a pipeline of BEGIN, the locks, the boots and every read (the counts too,
// as far as foresee knows them); a pipeline of the writes and COMMIT, sent
// in parts as the second pass makes them (pgwrite.go). The
// counts foresee missed, and the assignments when their version moved, are
// a round trip each between. On a loaded host a round trip
// is a wake-up that waits for a processor, so their number, not the
// server's work, sets a batch's latency. The transaction is pgx's own, on a
// connection of the pool, so nothing of it goes through database/sql.
func (l *Ledger) processSet(ctx context.Context, in []Input, readIDs bool) ([]Outcome, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: connection: %w", err)
	}
	defer conn.Close()
	var out []Outcome
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("ingest: driver connection %T is not pgx's", dc)
		}
		c := sc.Conn()
		var err error
		out, err = l.processSetOn(ctx, c, in, readIDs)
		if c.PgConn().TxStatus() != 'I' {
			// Failed or cut short: roll back, whatever the context says.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, rerr := c.Exec(rctx, "ROLLBACK"); rerr != nil || c.PgConn().TxStatus() != 'I' {
				c.Close(rctx) // the pool then drops it (driver.ErrBadConn)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errOutside: a lookup of the rules found nothing preloaded and would have
// run outside the batch's transaction. A bug of this file's preload (the
// rules looked up something new): the batch fails rather than book on a
// read outside the locks.
var errOutside = errors.New("ingest: a lookup the set-based path did not preload")

func (l *Ledger) processSetOn(ctx context.Context, c *pgx.Conn, in []Input, readIDs bool) ([]Outcome, error) {
	// tx stays nil: batch.stmt then records a lookup outside the batch
	// (errOutside) rather than running it.
	b := &batch{l: l, ctx: ctx, events: map[string]*Event{}, assigns: map[string][]Assignment{},
		idsUnread: !readIDs && l.calm.Load() >= l.calmAfter}
	n := len(in)
	p := &preloaded{want: make(map[countKey]bool, n), counts: make(map[countKey]int, n),
		holders: make(map[string]*holderState, n), boots: map[[2]string][2]int64{},
		ids: make(map[string]stored, n), saved: make(map[[2]string][]int64, n)}
	b.pre = p
	complete, err := b.preload(c, p, in)
	if err != nil {
		return nil, err
	}
	switch {
	case len(p.ids) > 0:
		l.calm.Store(0)
	case !b.idsUnread:
		l.calm.Add(1)
	}

	// First pass, unless foresee's was complete: which counts the rules ask
	// for, now on what was read; the preload read those foreseen already.
	if !complete {
		l.firstPasses.Add(1)
		if _, err := b.collect(p, in); err != nil {
			return nil, err
		}
		if b.outside {
			return nil, errOutside
		}
		if err := b.loadCounts(c, p); err != nil {
			return nil, err
		}
	}

	// Second pass: the answers, and the writes they make, sent as they
	// are made (pgwrite.go).
	wr, err := b.startWrites(c)
	if err != nil {
		return nil, err
	}
	defer wr.abort() // on every return before finish
	w := newCheckinRows(min(n, writePart))
	var newEvents []*Event
	out := make([]Outcome, len(in))
	for i, x := range in {
		ck := x.Checkin
		if s, ok := p.ids[ck.ID]; ok {
			o, err := replayOf(ck, s)
			if err != nil {
				return nil, err
			}
			out[i] = o
			continue
		}
		d, err := b.decide(x)
		if err != nil {
			return nil, err
		}
		d.res.V, d.res.ID = protocol.Version, ck.ID
		payload := d.res.Encode()
		w.add(x, d, payload)
		if len(w.id) == writePart && i < len(in)-1 {
			if err := wr.part(w); err != nil {
				return nil, err
			}
		}
		p.ids[ck.ID] = stored{ck.DeviceID, payload}
		if e := d.createEvent; e != nil {
			newEvents = append(newEvents, e)
			b.events[e.ID] = e
		}
		if d.enroll || d.points != 0 {
			h := p.holders[ck.ChipNumber]
			if h == nil {
				h = &holderState{}
				p.holders[ck.ChipNumber] = h
			}
			if d.enroll && !h.found {
				h.found, h.create, h.createdAt = true, true, protocol.FormatTime(x.ReceivedAt)
			}
			h.total += d.points
			h.delta += d.points
		}
		if d.res.Status == protocol.StatusSaved {
			k := [2]string{ck.ChipNumber, ck.EventID}
			p.saved[k] = append(p.saved[k], d.datedMs)
		}
		out[i] = Outcome{Result: d.res, Payload: payload}
	}
	if b.outside {
		return nil, errOutside
	}
	if err := wr.finish(p, w, newEvents); err != nil {
		return nil, err
	}
	return out, nil
}

// replayOf answers an id already answered (s) as replay does.
func replayOf(c protocol.Checkin, s stored) (Outcome, error) {
	if s.device != c.DeviceID {
		res := protocol.Result{V: protocol.Version, ID: c.ID, Status: protocol.StatusInvalidRequest, EndUserMessage: msgInvalid}
		return Outcome{Result: res, Payload: res.Encode(), Collision: true}, nil
	}
	res, err := protocol.DecodeResult(s.payload)
	if err != nil {
		return Outcome{}, fmt.Errorf("ingest: stored result of %s: %w", c.ID, err)
	}
	return Outcome{Result: res, Payload: s.payload, Replay: true}, nil
}

// preload takes the chips' locks, records the boots, and reads for the
// whole batch what the rules look up: one pipeline. The reads are queued
// after the locks, so each runs (in a fresh READ COMMITTED snapshot) once
// every lock is held. complete says that foresee followed every checkin on
// what was then read: the counts read are all the rules ask for, and the
// first pass is not needed.
func (b *batch) preload(c *pgx.Conn, p *preloaded, in []Input) (complete bool, err error) {
	l := b.l
	ids, chips := make([]string, 0, len(in)), make([]string, 0, len(in))
	var bootDev, bootID, asDev, asEv, events []string
	// What was asked for already, per kind (one key or two).
	type seenKey struct {
		kind byte
		a, b string
	}
	seen := make(map[seenKey]bool, 2*len(in))
	once := func(kind byte, a, b string) bool {
		k := seenKey{kind, a, b}
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	for _, x := range in {
		c := x.Checkin
		if once('i', c.ID, "") {
			ids = append(ids, c.ID)
		}
		// What decide looks up: only valid chips reach the passholder,
		// only clean event ids the assignments.
		if protocol.CheckChip(c.ChipNumber) != nil {
			continue
		}
		if once('c', c.ChipNumber, "") {
			chips = append(chips, c.ChipNumber)
		}
		if usesBoot(c) && once('b', c.DeviceID, c.BootID) {
			bootDev, bootID = append(bootDev, c.DeviceID), append(bootID, c.BootID)
		}
		if !cleanText(c.EventID) {
			continue
		}
		if once('a', c.DeviceID, c.EventID) {
			asDev, asEv = append(asDev, c.DeviceID), append(asEv, c.EventID)
		}
		if l.o.EnrollUnknown && once('e', c.EventID, "") {
			events = append(events, c.EventID)
		}
	}
	// The assignments the cache holds, for the version read below.
	var asKeys []string
	var cachedAt, version int64
	var miss []int
	if len(asDev) > 0 {
		asKeys = make([]string, len(asDev))
		for i := range asDev {
			asKeys[i] = assignKey(asDev[i], asEv[i])
		}
		cachedAt, miss = l.ac.lookup(asKeys, b.assigns)
	}
	bs := latestBoots(in)
	foreseen, whole, err := b.foresee(p, in, bs)
	if err != nil {
		return false, err
	}

	var q pipeline
	q.exec("begin", "BEGIN")
	if len(chips) > 0 {
		q.exec("lock chips", l.d.lockChips, chips)
	}
	if len(bs) > 0 {
		var dev, id []string
		var up, rcv []int64
		for _, bt := range bs {
			dev, id, up, rcv = append(dev, bt.device), append(id, bt.boot), append(up, bt.uptimeMs), append(rcv, bt.receivedMs)
		}
		q.exec("boots", l.pg.upBoots, dev, id, up, rcv)
	}
	// The ids, unless the batches before met none answered already
	// (idsUnread): a replay then makes the insert fail, and the batch runs
	// again with its ids read.
	if !b.idsUnread {
		q.query("read ids", l.pg.selIDs, func(r pgx.Rows) error {
			var id string
			var s stored
			if err := r.Scan(&id, &s.device, &s.payload); err != nil {
				return err
			}
			p.ids[id] = s
			return nil
		}, ids)
	}
	if len(chips) > 0 {
		q.query("passholders", l.pg.selHolders, func(r pgx.Rows) error {
			var chip string
			h := &holderState{found: true}
			if err := r.Scan(&chip, &h.total, &h.blocked, &h.tid); err != nil {
				return err
			}
			p.holders[chip] = h
			return nil
		}, chips)
	}
	if len(bootDev) > 0 {
		q.query("boots", l.pg.selBoots, func(r pgx.Rows) error {
			var k [2]string
			var v [2]int64
			if err := r.Scan(&k[0], &k[1], &v[0], &v[1]); err != nil {
				return err
			}
			p.boots[k] = v
			return nil
		}, bootDev, bootID)
	}
	// The assignments: from the cache where it holds the pairs, for the
	// version of the table read here after the locks.
	if len(asDev) > 0 {
		q.query("assignments' version", l.pg.selAssignVer, func(r pgx.Rows) error { return r.Scan(&version) })
		if len(miss) > 0 {
			dev, ev := make([]string, len(miss)), make([]string, len(miss))
			for j, i := range miss {
				dev[j], ev[j] = asDev[i], asEv[i]
				b.assigns[asKeys[i]] = nil // none is cached as none
			}
			q.query("assignments", l.pg.selAssigns, b.scanAssignment, dev, ev)
		}
	}
	if len(events) > 0 {
		for _, id := range events {
			b.events[id] = nil
		}
		q.query("events", l.pg.selEvents, func(r pgx.Rows) error {
			var e Event
			var from, until sql.NullInt64
			if err := r.Scan(&e.ID, &e.Points, &e.Period, &e.Volume, &from, &until); err != nil {
				return err
			}
			if from.Valid {
				e.ValidFrom = time.UnixMilli(from.Int64).UTC()
			}
			if until.Valid {
				e.ValidUntil = time.UnixMilli(until.Int64).UTC()
			}
			b.events[e.ID] = &e
			return nil
		}, events)
	}
	if len(foreseen) > 0 {
		b.queueCounts(&q, p, foreseen)
	}
	if err := q.run(b.ctx, c); err != nil {
		return false, err
	}
	// What foresee followed was what the rules now see: the assignments of
	// the version cached, each boot read as the batch alone has it (a boot
	// not read is one only invalid chips used, which the rules refuse
	// before they date them).
	complete = whole && len(miss) == 0 && (len(asKeys) == 0 || version == cachedAt)
	for _, bt := range bs {
		if v, ok := p.boots[[2]string{bt.device, bt.boot}]; ok && v != [2]int64{bt.uptimeMs, bt.receivedMs} {
			complete = false
		}
	}
	if len(asKeys) == 0 || len(miss) == 0 && version == cachedAt {
		return complete, nil // nothing new for the cache
	}
	if len(miss) < len(asKeys) && version != cachedAt {
		// The cache holds for another version: the batch's pairs are read
		// afresh, those just read too (a version moves seldom).
		for _, k := range asKeys {
			b.assigns[k] = nil
		}
		var again pipeline
		again.query("assignments", l.pg.selAssigns, b.scanAssignment, asDev, asEv)
		if err := again.run(b.ctx, c); err != nil {
			return false, err
		}
	}
	l.ac.store(version, asKeys, b.assigns)
	return complete, nil
}

// scanAssignment adds the assignment of a row of selAssigns to its pair's,
// in the statement's order (newest first).
func (b *batch) scanAssignment(r pgx.Rows) error {
	a, err := scanAssignment(r)
	if err != nil {
		return err
	}
	k := assignKey(a.DeviceID, a.Event.ID)
	b.assigns[k] = append(b.assigns[k], a)
	return nil
}

// pipeline is statements sent in one round trip (a pgx batch), each with
// the step that reads its result.
type pipeline struct {
	q     pgx.Batch
	steps []func(pgx.BatchResults) error
}

// exec queues a statement whose result is only whether it succeeded; what
// names it in the error.
func (p *pipeline) exec(what, sql string, args ...any) {
	p.q.Queue(sql, args...)
	p.steps = append(p.steps, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("ingest: %s: %w", what, err)
		}
		return nil
	})
}

// query queues a statement whose rows scan reads, one at a time.
func (p *pipeline) query(what, sql string, scan func(pgx.Rows) error, args ...any) {
	p.q.Queue(sql, args...)
	p.steps = append(p.steps, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("ingest: %s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("ingest: %s: %w", what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ingest: %s: %w", what, err)
		}
		return nil
	})
}

// run sends the pipeline in one round trip and reads its results in order;
// the first error is returned (the server fails what follows it).
func (p *pipeline) run(ctx context.Context, c *pgx.Conn) error {
	br := c.SendBatch(ctx, &p.q)
	var first error
	for _, step := range p.steps {
		if err := step(br); err != nil {
			first = err
			break
		}
	}
	if err := br.Close(); first == nil && err != nil {
		first = fmt.Errorf("ingest: pipeline: %w", err)
	}
	return first
}

// foresee is the rules' first pass run before the preload, on what the
// batch knows without reading: the assignments cached (assigncache.go,
// checked against their version after the locks) and each boot's latest
// uptime in the batch (bs, latestBoots). The counts it finds the rules
// asking for are read in the preload's pipeline, so that a batch of known
// kiosks and events costs no round trip for them. A checkin it cannot
// follow (an assignment not cached, an event looked up), or one the
// preload's reads send another way (the assignments' version moved, a boot
// the ledger knows further than the batch), has its count read after the
// preload (loadCounts): a wrong guess costs a round trip, never an answer.
func (b *batch) foresee(p *preloaded, in []Input, bs []bootUptime) (keys []countKey, whole bool, err error) {
	p.foreseeing = true
	for _, bt := range bs {
		p.boots[[2]string{bt.device, bt.boot}] = [2]int64{bt.uptimeMs, bt.receivedMs}
	}
	defer func() {
		clear(p.boots)
		clear(p.want)
		p.foreseeing = false
	}()
	if whole, err = b.collect(p, in); err != nil {
		return nil, false, err
	}
	keys = make([]countKey, 0, len(p.want))
	for k := range p.want {
		keys = append(keys, k)
	}
	return keys, whole, nil
}

// collect is the rules' first pass over the checkins not answered already
// (p.ids, or an id earlier in the batch): each checkin's stops at its count,
// which it records in p.want. whole: no checkin's pass ended at a lookup
// foresee could not answer (errUnforeseen).
func (b *batch) collect(p *preloaded, in []Input) (whole bool, err error) {
	p.collecting = true
	defer func() { p.collecting = false }()
	whole = true
	pending := make(map[string]bool, len(in))
	for _, x := range in {
		id := x.Checkin.ID
		if _, ok := p.ids[id]; ok || pending[id] {
			continue
		}
		pending[id] = true
		_, err := b.decide(x)
		switch {
		case errors.Is(err, errUnforeseen):
			whole = false
		case err != nil && !errors.Is(err, errCounted):
			return false, err
		}
	}
	return whole, nil
}

// loadCounts reads the counts the first pass asked for that the preload did
// not read (foresee), in one statement.
func (b *batch) loadCounts(c *pgx.Conn, p *preloaded) error {
	var keys []countKey
	for k := range p.want {
		if _, ok := p.counts[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	b.l.lateCounts.Add(1)
	var q pipeline
	b.queueCounts(&q, p, keys)
	return q.run(b.ctx, c)
}

// queueCounts queues the read of keys' counts into p.counts, one statement.
func (b *batch) queueCounts(q *pipeline, p *preloaded, keys []countKey) {
	chip, ev := make([]string, len(keys)), make([]string, len(keys))
	from, until := make([]int64, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		chip[i], ev[i], from[i], until[i] = k.chip, k.event, k.from, k.until
	}
	q.query("counts", b.l.pg.selCounts, func(r pgx.Rows) error {
		var i int64
		var n int
		if err := r.Scan(&i, &n); err != nil {
			return err
		}
		if i < 1 || int(i) > len(keys) {
			return fmt.Errorf("ordinal %d of %d", i, len(keys))
		}
		p.counts[keys[i-1]] = n
		return nil
	}, chip, ev, from, until)
}

// checkinRows are the batch's ledger rows, one array per column.
type checkinRows struct {
	id, device, chip, event, counter, status, tapped, received []string
	seq, dated                                                 []int64
	points                                                     []int32
	synced                                                     []bool
	result                                                     [][]byte
}

// newCheckinRows has room for n rows: a batch's columns are appended to
// without growing.
func newCheckinRows(n int) *checkinRows {
	str := func() []string { return make([]string, 0, n) }
	return &checkinRows{id: str(), device: str(), chip: str(), event: str(), counter: str(), status: str(),
		tapped: str(), received: str(), seq: make([]int64, 0, n), dated: make([]int64, 0, n),
		points: make([]int32, 0, n), synced: make([]bool, 0, n), result: make([][]byte, 0, n)}
}

// reset empties r for the next part, keeping its room.
func (r *checkinRows) reset() {
	r.id, r.device, r.chip, r.event, r.counter = r.id[:0], r.device[:0], r.chip[:0], r.event[:0], r.counter[:0]
	r.status, r.tapped, r.received, r.seq, r.dated = r.status[:0], r.tapped[:0], r.received[:0], r.seq[:0], r.dated[:0]
	r.points, r.synced, r.result = r.points[:0], r.synced[:0], r.result[:0]
}

func (r *checkinRows) add(x Input, d decision, payload []byte) {
	c := x.Checkin
	r.id, r.device, r.seq = append(r.id, c.ID), append(r.device, c.DeviceID), append(r.seq, c.Seq)
	r.chip, r.event, r.counter = append(r.chip, storable(c.ChipNumber)), append(r.event, storable(c.EventID)),
		append(r.counter, storable(c.CounterID))
	r.status, r.points = append(r.status, d.res.Status), append(r.points, int32(d.points))
	r.tapped, r.synced, r.dated = append(r.tapped, storable(c.TappedAt)), append(r.synced, c.ClockSynced), append(r.dated, d.datedMs)
	r.received, r.result = append(r.received, protocol.FormatTime(x.ReceivedAt)), append(r.result, payload)
}
