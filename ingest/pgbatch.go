package ingest

import (
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// The set-based path of the PostgreSQL ledger. Per checkin, the rules of
// process.go cost a few round trips to the server (the boot, the
// assignment, the passholder and its count, the insert, the points), about
// three for a plain tap: the server waits on the network more than it
// works. Here a batch costs a dozen statements whatever its size: every
// read of the rules is done for the whole batch first (arrays and unnest,
// one statement per table), the rules run in memory on what was read, and
// every write is one statement per table again. The rules themselves are
// the same code (batch.decide and what it calls), so both dialects answer
// alike; what differs is only where decide's lookups are answered from.
//
// The guarantees of the package doc hold unchanged: the chips' advisory
// locks are taken first, in one statement, so that everything read after
// them is committed and stays so until this transaction ends; the reads of
// this path are the reads the per-checkin path would have made, only
// earlier, and what the batch itself writes is applied to them in memory
// in batch order (a card's total, its saved checkins, a repeated id). One
// thing can still change under the batch: a checkin id inserted by another
// transaction that holds it with another chip (or with an invalid chip,
// which takes no lock). The insert then finds the id taken; the batch is
// rolled back and run again (errIDRace), and its second run reads the
// other transaction's row as a replay, as the per-checkin path would have
// answered it.

// errIDRace: a checkin id was inserted by a concurrent transaction after the
// batch read the ids. Running the batch again is right (dialect.retryable).
var errIDRace = errors.New("ingest: checkin id taken by a concurrent batch")

// pgStmts are the set-based path's statements, prepared once per Ledger.
type pgStmts struct {
	upBoots, selIDs, selHolders, selBoots, selAssigns, selEvents, selCounts,
	insCheckins, insEvents, upHolders *sql.Stmt
}

func (l *Ledger) preparePG() error {
	for _, p := range []struct {
		s   **sql.Stmt
		sql string
	}{
		// Deduplicated and sorted by latestBoots: one row per key, taken in
		// key order.
		{&l.pg.upBoots, `INSERT INTO boots (device_id, boot_id, uptime_ms, received_ms)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
			ON CONFLICT (device_id, boot_id) DO UPDATE SET uptime_ms = excluded.uptime_ms, received_ms = excluded.received_ms
			WHERE excluded.uptime_ms > boots.uptime_ms`},
		{&l.pg.selIDs, `SELECT id, device_id, result FROM checkins WHERE id = ANY($1::text[])`},
		{&l.pg.selHolders, `SELECT chip_number, total_points, blocked FROM passholders WHERE chip_number = ANY($1::text[])`},
		{&l.pg.selBoots, `SELECT b.device_id, b.boot_id, b.uptime_ms, b.received_ms
			FROM boots AS b JOIN unnest($1::text[], $2::text[]) AS k(d, i) ON b.device_id = k.d AND b.boot_id = k.i`},
		// The columns of selAssign (scanAssignment), newest first per key.
		{&l.pg.selAssigns, `SELECT a.device_id, a.serial, a.event_id, a.counter_id, a.points, a.period, a.volume,
			a.valid_from_ms, a.valid_until_ms, a.assigned_ms, a.replaced_ms
			FROM assignments AS a JOIN unnest($1::text[], $2::text[]) AS k(d, e) ON a.device_id = k.d AND a.event_id = k.e
			ORDER BY a.device_id, a.event_id, a.serial DESC`},
		{&l.pg.selEvents, `SELECT id, points, period, volume, valid_from_ms, valid_until_ms FROM events WHERE id = ANY($1::text[])`},
		// selHolderSaved's count, for many (chip, event, period) at once;
		// each is an index range of checkins_saved.
		{&l.pg.selCounts, `SELECT k.i, (SELECT count(*) FROM checkins AS c WHERE c.chip_number = k.chip AND c.event_id = k.ev
			AND c.status = 'saved' AND c.dated_ms >= k.f AND c.dated_ms < k.u)
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS k(chip, ev, f, u, i)`},
		// In batch order, so that booked (the export's order) follows it.
		{&l.pg.insCheckins, `INSERT INTO checkins (id, device_id, seq, chip_number, event_id, counter_id, status, points,
			tapped_at, clock_synced, dated_ms, received_at, result)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::int[], $9::text[], $10::bool[], $11::bigint[], $12::text[], $13::bytea[])
			ON CONFLICT (id) DO NOTHING`},
		{&l.pg.insEvents, `INSERT INTO events (id, points, period, volume)
			SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[]) ON CONFLICT (id) DO NOTHING`},
		// One row per chip (the batch's points summed), sorted: enrolment
		// and points in one statement, as enroll and addPoints do apart.
		{&l.pg.upHolders, `INSERT INTO passholders (chip_number, total_points, blocked, created_at)
			SELECT * FROM unnest($1::text[], $2::int[], $3::bool[], $4::text[])
			ON CONFLICT (chip_number) DO UPDATE SET total_points = passholders.total_points + excluded.total_points`},
	} {
		s, err := l.db.Prepare(p.sql)
		if err != nil {
			return fmt.Errorf("ingest: prepare: %w", err)
		}
		*p.s = s
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
		return found, total, blocked, 0, nil
	}
	n, ok := p.counts[k]
	if !ok { // not foreseen by the first pass: asked on its own
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

// bootOf is the highest uptime known of a boot and when it arrived.
func (b *batch) bootOf(device, boot string) (upMs, rcvMs int64, ok bool, err error) {
	if b.pre != nil {
		if v, ok := b.pre.boots[[2]string{device, boot}]; ok {
			return v[0], v[1], true, nil
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

// processSet is processOnce for PostgreSQL, set-based.
func (l *Ledger) processSet(tx *sql.Tx, b *batch, in []Input) ([]Outcome, error) {
	ctx := b.ctx
	p := &preloaded{want: map[countKey]bool{}, counts: map[countKey]int{}, holders: map[string]*holderState{},
		boots: map[[2]string][2]int64{}, ids: map[string]stored{}, saved: map[[2]string][]int64{}}
	// The keys every read needs.
	var ids, chips, bootDev, bootID, asDev, asEv, events []string
	seen := map[string]bool{}
	once := func(k string) bool {
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	for _, x := range in {
		c := x.Checkin
		if once("i" + c.ID) {
			ids = append(ids, c.ID)
		}
		if protocol.CheckChip(c.ChipNumber) != nil {
			continue
		}
		if once("c" + c.ChipNumber) {
			chips = append(chips, c.ChipNumber)
		}
		if usesBoot(c) && once("b"+c.DeviceID+"\x00"+c.BootID) {
			bootDev, bootID = append(bootDev, c.DeviceID), append(bootID, c.BootID)
		}
		if !cleanText(c.EventID) {
			continue
		}
		if once("a" + c.DeviceID + "\x00" + c.EventID) {
			asDev, asEv = append(asDev, c.DeviceID), append(asEv, c.EventID)
		}
		if l.o.EnrollUnknown && once("e"+c.EventID) {
			events = append(events, c.EventID)
		}
	}
	if len(chips) > 0 {
		if _, err := b.stmt(l.st.lockChips).ExecContext(ctx, chips); err != nil {
			return nil, fmt.Errorf("ingest: lock chips: %w", err)
		}
	}
	if bs := latestBoots(in); len(bs) > 0 {
		var dev, id []string
		var up, rcv []int64
		for _, bt := range bs {
			dev, id, up, rcv = append(dev, bt.device), append(id, bt.boot), append(up, bt.uptimeMs), append(rcv, bt.receivedMs)
		}
		if _, err := b.stmt(l.pg.upBoots).ExecContext(ctx, dev, id, up, rcv); err != nil {
			return nil, fmt.Errorf("ingest: boots: %w", err)
		}
	}
	if err := b.preload(p, ids, chips, bootDev, bootID, asDev, asEv, events); err != nil {
		return nil, err
	}
	b.pre = p

	// First pass: which counts the rules will ask for.
	p.collecting = true
	pending := map[string]bool{}
	for _, x := range in {
		c := x.Checkin
		if _, ok := p.ids[c.ID]; ok || pending[c.ID] {
			continue
		}
		pending[c.ID] = true
		if _, err := b.decide(x); err != nil {
			return nil, err
		}
	}
	p.collecting = false
	if err := b.loadCounts(p); err != nil {
		return nil, err
	}

	// Second pass: the answers, and the writes they make.
	var w checkinRows
	var newEvents []*Event
	out := make([]Outcome, len(in))
	for i, x := range in {
		c := x.Checkin
		if s, ok := p.ids[c.ID]; ok {
			o, err := replayOf(c, s)
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
		d.res.V, d.res.ID = protocol.Version, c.ID
		payload := d.res.Encode()
		w.add(x, d, payload)
		p.ids[c.ID] = stored{c.DeviceID, payload}
		if e := d.createEvent; e != nil {
			if _, known := b.events[e.ID]; !known || b.events[e.ID] == nil {
				newEvents = append(newEvents, e)
			}
			b.events[e.ID] = e
		}
		if d.enroll || d.points != 0 {
			h := p.holders[c.ChipNumber]
			if h == nil {
				h = &holderState{}
				p.holders[c.ChipNumber] = h
			}
			if d.enroll && !h.found {
				h.found, h.create, h.createdAt = true, true, protocol.FormatTime(x.ReceivedAt)
			}
			h.total += d.points
			h.delta += d.points
		}
		if d.res.Status == protocol.StatusSaved {
			k := [2]string{c.ChipNumber, c.EventID}
			p.saved[k] = append(p.saved[k], d.datedMs)
		}
		out[i] = Outcome{Result: d.res, Payload: payload}
	}
	if err := b.write(p, &w, newEvents); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("ingest: commit: %w", err)
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

// preload reads, for the whole batch, what the rules look up.
func (b *batch) preload(p *preloaded, ids, chips, bootDev, bootID, asDev, asEv, events []string) error {
	ctx, l := b.ctx, b.l
	rows, err := b.stmt(l.pg.selIDs).QueryContext(ctx, ids)
	if err != nil {
		return fmt.Errorf("ingest: read ids: %w", err)
	}
	for rows.Next() {
		var id string
		var s stored
		if err := rows.Scan(&id, &s.device, &s.payload); err != nil {
			rows.Close()
			return fmt.Errorf("ingest: read ids: %w", err)
		}
		p.ids[id] = s
	}
	if err := closeRows(rows, "read ids"); err != nil {
		return err
	}
	if len(chips) > 0 {
		rows, err := b.stmt(l.pg.selHolders).QueryContext(ctx, chips)
		if err != nil {
			return fmt.Errorf("ingest: passholders: %w", err)
		}
		for rows.Next() {
			var chip string
			h := &holderState{found: true}
			if err := rows.Scan(&chip, &h.total, &h.blocked); err != nil {
				rows.Close()
				return fmt.Errorf("ingest: passholders: %w", err)
			}
			p.holders[chip] = h
		}
		if err := closeRows(rows, "passholders"); err != nil {
			return err
		}
	}
	if len(bootDev) > 0 {
		rows, err := b.stmt(l.pg.selBoots).QueryContext(ctx, bootDev, bootID)
		if err != nil {
			return fmt.Errorf("ingest: boots: %w", err)
		}
		for rows.Next() {
			var k [2]string
			var v [2]int64
			if err := rows.Scan(&k[0], &k[1], &v[0], &v[1]); err != nil {
				rows.Close()
				return fmt.Errorf("ingest: boots: %w", err)
			}
			p.boots[k] = v
		}
		if err := closeRows(rows, "boots"); err != nil {
			return err
		}
	}
	if len(asDev) > 0 {
		for i := range asDev { // none is cached as none
			b.assigns[asDev[i]+"\x00"+asEv[i]] = nil
		}
		rows, err := b.stmt(l.pg.selAssigns).QueryContext(ctx, asDev, asEv)
		if err != nil {
			return fmt.Errorf("ingest: assignments: %w", err)
		}
		for rows.Next() {
			a, err := scanAssignment(rows)
			if err != nil {
				rows.Close()
				return err
			}
			k := a.DeviceID + "\x00" + a.Event.ID
			b.assigns[k] = append(b.assigns[k], a)
		}
		if err := closeRows(rows, "assignments"); err != nil {
			return err
		}
	}
	if len(events) > 0 {
		for _, id := range events {
			b.events[id] = nil
		}
		rows, err := b.stmt(l.pg.selEvents).QueryContext(ctx, events)
		if err != nil {
			return fmt.Errorf("ingest: events: %w", err)
		}
		for rows.Next() {
			var e Event
			var from, until sql.NullInt64
			if err := rows.Scan(&e.ID, &e.Points, &e.Period, &e.Volume, &from, &until); err != nil {
				rows.Close()
				return fmt.Errorf("ingest: events: %w", err)
			}
			if from.Valid {
				e.ValidFrom = time.UnixMilli(from.Int64).UTC()
			}
			if until.Valid {
				e.ValidUntil = time.UnixMilli(until.Int64).UTC()
			}
			b.events[e.ID] = &e
		}
		if err := closeRows(rows, "events"); err != nil {
			return err
		}
	}
	return nil
}

// loadCounts reads the counts the first pass asked for, in one statement.
func (b *batch) loadCounts(p *preloaded) error {
	if len(p.want) == 0 {
		return nil
	}
	keys := make([]countKey, 0, len(p.want))
	for k := range p.want {
		keys = append(keys, k)
	}
	chip, ev := make([]string, len(keys)), make([]string, len(keys))
	from, until := make([]int64, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		chip[i], ev[i], from[i], until[i] = k.chip, k.event, k.from, k.until
	}
	rows, err := b.stmt(b.l.pg.selCounts).QueryContext(b.ctx, chip, ev, from, until)
	if err != nil {
		return fmt.Errorf("ingest: counts: %w", err)
	}
	for rows.Next() {
		var i int64
		var n int
		if err := rows.Scan(&i, &n); err != nil {
			rows.Close()
			return fmt.Errorf("ingest: counts: %w", err)
		}
		if i < 1 || int(i) > len(keys) {
			rows.Close()
			return fmt.Errorf("ingest: counts: ordinal %d of %d", i, len(keys))
		}
		p.counts[keys[i-1]] = n
	}
	return closeRows(rows, "counts")
}

func closeRows(rows *sql.Rows, what string) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ingest: %s: %w", what, err)
	}
	return nil
}

// checkinRows are the batch's ledger rows, one array per column.
type checkinRows struct {
	id, device, chip, event, counter, status, tapped, received []string
	seq, dated                                                 []int64
	points                                                     []int32
	synced                                                     []bool
	result                                                     [][]byte
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

// write makes the batch's writes: its ledger rows, the events it created,
// its cards' points and enrolments; one statement each.
func (b *batch) write(p *preloaded, r *checkinRows, events []*Event) error {
	ctx, l := b.ctx, b.l
	if len(r.id) > 0 {
		res, err := b.stmt(l.pg.insCheckins).ExecContext(ctx, r.id, r.device, r.seq, r.chip, r.event, r.counter,
			r.status, r.points, r.tapped, r.synced, r.dated, r.received, r.result)
		if err != nil {
			return fmt.Errorf("ingest: insert checkins: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("ingest: insert checkins: %w", err)
		}
		if n != int64(len(r.id)) {
			return fmt.Errorf("%w (%d of %d rows inserted)", errIDRace, n, len(r.id))
		}
	}
	if len(events) > 0 {
		sort.Slice(events, func(i, j int) bool { return events[i].ID < events[j].ID })
		var id, period []string
		var pts, vol []int32
		for _, e := range events {
			id, period, pts, vol = append(id, e.ID), append(period, e.Period), append(pts, int32(e.Points)), append(vol, int32(e.Volume))
		}
		if _, err := b.stmt(l.pg.insEvents).ExecContext(ctx, id, pts, period, vol); err != nil {
			return fmt.Errorf("ingest: create events: %w", err)
		}
	}
	var chips, created []string
	for chip, h := range p.holders {
		if h.create || h.delta != 0 {
			chips = append(chips, chip)
		}
	}
	if len(chips) == 0 {
		return nil
	}
	sort.Strings(chips)
	pts, blocked := make([]int32, len(chips)), make([]bool, len(chips))
	for i, chip := range chips {
		h := p.holders[chip]
		pts[i] = int32(h.delta)
		created = append(created, h.createdAt)
	}
	if _, err := b.stmt(l.pg.upHolders).ExecContext(ctx, chips, pts, blocked, created); err != nil {
		return fmt.Errorf("ingest: passholders: %w", err)
	}
	return nil
}
