package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Input is one checkin and the instant central received it.
type Input struct {
	Checkin    protocol.Checkin
	ReceivedAt time.Time
}

// Outcome is the answer to one Input.
type Outcome struct {
	Result protocol.Result
	// Payload is the Result's wire form: for a replayed id, the very bytes
	// stored with the first answer.
	Payload []byte
	// Replay says the id was already in the ledger (or earlier in the batch).
	Replay bool
	// Collision says the id is in the ledger for another device: the answer
	// is invalid-request and nothing was recorded.
	Collision bool
}

// Process books checkins received at receivedAt in one transaction and
// returns one Result per checkin, in order. Replayed ids (also within the
// batch) get the stored Result. On error nothing is booked.
func (l *Ledger) Process(ctx context.Context, cs []protocol.Checkin, receivedAt time.Time) ([]protocol.Result, error) {
	in := make([]Input, len(cs))
	for i, c := range cs {
		in[i] = Input{Checkin: c, ReceivedAt: receivedAt}
	}
	out, err := l.ProcessBatch(ctx, in)
	if err != nil {
		return nil, err
	}
	rs := make([]protocol.Result, len(out))
	for i, o := range out {
		rs[i] = o.Result
	}
	return rs, nil
}

// ProcessBatch is Process with a receipt time per checkin and the wire form
// of each answer. The checkins are handled one after the other inside one
// transaction, so duplicates and several taps of one chip in a batch see each
// other. On error the transaction is rolled back and nothing is booked.
//
// Each checkin's id and deviceId must be valid (protocol.ValidID,
// protocol.ValidDeviceID), as protocol.DecodeCheckin ensures; otherwise
// nothing is booked and the error wraps ErrInvalid. A transaction that the
// database aborts to break a deadlock between concurrent writers is run
// again, up to a few times.
func (l *Ledger) ProcessBatch(ctx context.Context, in []Input) ([]Outcome, error) {
	if len(in) == 0 {
		return nil, nil
	}
	for i, x := range in {
		if !protocol.ValidID(x.Checkin.ID) || !protocol.ValidDeviceID(x.Checkin.DeviceID) {
			return nil, fmt.Errorf("ingest: checkin %d of batch: id or deviceId: %w", i, ErrInvalid)
		}
	}
	const attempts = 5
	readIDs := false // on the set-based path, read the ids first whatever the batches before met
	for n := 1; ; n++ {
		out, err := l.processOnce(ctx, in, readIDs)
		if err == nil && l.an != nil {
			l.an.booked(len(in))
		}
		if err == nil || n == attempts || !l.d.retryable(err) || ctx.Err() != nil {
			return out, err
		}
		if errors.Is(err, errIDUnread) {
			readIDs = true // and on every attempt after
			l.o.Logger.Debug("a replay in a batch that did not read its ids; running it again", "err", err)
			continue
		}
		l.o.Logger.Warn("ledger transaction aborted by a concurrent writer; retrying", "attempt", n, "err", err)
	}
}

func (l *Ledger) processOnce(ctx context.Context, in []Input, readIDs bool) ([]Outcome, error) {
	if l.d.setBased {
		return l.processSet(ctx, in, readIDs)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ingest: begin: %w", err)
	}
	defer tx.Rollback()
	b := batch{l: l, ctx: ctx, tx: tx, events: map[string]*Event{}, assigns: map[string][]Assignment{}}
	// Concurrent writers (PostgreSQL): hold every chip of the batch before
	// reading anything the rules depend on. Only valid chips reach the
	// passholder and count queries.
	if l.st.lockChips != nil {
		var chips []string
		for _, x := range in {
			if protocol.CheckChip(x.Checkin.ChipNumber) == nil {
				chips = append(chips, x.Checkin.ChipNumber)
			}
		}
		if len(chips) > 0 {
			if _, err := b.stmt(l.st.lockChips).ExecContext(ctx, chips); err != nil {
				return nil, fmt.Errorf("ingest: lock chips: %w", err)
			}
		}
	}
	// First learn the highest uptime of every boot in the batch, so that
	// unsynced checkins are dated against the kiosk's latest known uptime.
	// One write per boot, in key order (so that concurrent batches take the
	// boots' row locks in one order); the highest uptime wins, and with it
	// the receipt of its first arrival.
	for _, bt := range latestBoots(in) {
		if _, err := b.stmt(l.st.upBoot).ExecContext(ctx, bt.device, bt.boot, bt.uptimeMs, bt.receivedMs); err != nil {
			return nil, fmt.Errorf("ingest: boot: %w", err)
		}
	}
	out := make([]Outcome, len(in))
	for i, x := range in {
		if out[i], err = b.one(x); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("ingest: commit: %w", err)
	}
	return out, nil
}

type bootUptime struct {
	device, boot         string
	uptimeMs, receivedMs int64
}

// usesBoot says whether c is dated from its boot's uptime.
func usesBoot(c protocol.Checkin) bool {
	return !c.ClockSynced && c.BootID != "" && c.UptimeMs >= 0 && cleanText(c.BootID)
}

// latestBoots returns, per boot of an unsynced checkin in the batch, the
// highest uptime and when it first arrived, sorted by (device, boot).
func latestBoots(in []Input) []bootUptime {
	idx := map[[2]string]int{}
	var bs []bootUptime
	for _, x := range in {
		c := x.Checkin
		if !usesBoot(c) {
			continue
		}
		k := [2]string{c.DeviceID, c.BootID}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(bs)
			bs = append(bs, bootUptime{c.DeviceID, c.BootID, c.UptimeMs, x.ReceivedAt.UnixMilli()})
			continue
		}
		if c.UptimeMs > bs[i].uptimeMs {
			bs[i].uptimeMs, bs[i].receivedMs = c.UptimeMs, x.ReceivedAt.UnixMilli()
		}
	}
	sort.Slice(bs, func(i, j int) bool {
		if bs[i].device != bs[j].device {
			return bs[i].device < bs[j].device
		}
		return bs[i].boot < bs[j].boot
	})
	return bs
}

// cleanText says whether s can be stored and looked up as text in every
// dialect: valid UTF-8 without NUL (PostgreSQL's text refuses both; JSON
// can carry a NUL as \u0000).
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// storable makes s clean text, replacing what is not with U+FFFD.
func storable(s string) string {
	if cleanText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

type batch struct {
	l   *Ledger
	ctx context.Context
	tx  *sql.Tx
	// events caches the events looked up in this transaction: a batch
	// mostly holds checkins of a few events.
	events map[string]*Event
	// assigns caches each (device, event)'s assignments, newest first.
	assigns map[string][]Assignment
	// pre, on the set-based path (pgbatch.go), is what was read for the
	// whole batch before the rules ran; nil: every lookup is a statement.
	pre *preloaded
	// outside says a lookup ran outside the batch's transaction (see stmt).
	outside bool
	// idsUnread: the set-based path did not read the batch's ids first
	// (calmBatches); an id answered already fails the insert (errIDUnread).
	idsUnread bool
}

// stmt is s in the batch's transaction. On the set-based path, which has no
// database/sql transaction (tx nil), a lookup reaching here was not
// preloaded: it is recorded (outside) and runs on the pool, and the batch
// fails before it books anything (errOutside).
func (b *batch) stmt(s *sql.Stmt) *sql.Stmt {
	if b.tx == nil {
		b.outside = true
		return s
	}
	return b.tx.StmtContext(b.ctx, s)
}

// decision is what the rules say about one checkin, and the writes that go
// with it once its ledger row is in.
type decision struct {
	res         protocol.Result
	points      int
	datedMs     int64
	createEvent *Event
	enroll      bool
}

func (b *batch) one(x Input) (Outcome, error) {
	c := x.Checkin
	d, err := b.decide(x)
	if err != nil {
		return Outcome{}, err
	}
	d.res.V = protocol.Version
	d.res.ID = c.ID
	payload := d.res.Encode()
	r, err := b.stmt(b.l.st.insCheckin).ExecContext(b.ctx, c.ID, c.DeviceID, c.Seq, storable(c.ChipNumber), storable(c.EventID),
		storable(c.CounterID), d.res.Status, d.points, storable(c.TappedAt), c.ClockSynced, d.datedMs,
		protocol.FormatTime(x.ReceivedAt), payload)
	if err != nil {
		return Outcome{}, fmt.Errorf("ingest: insert checkin: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return Outcome{}, fmt.Errorf("ingest: insert checkin: %w", err)
	}
	if n == 0 {
		return b.replay(c)
	}
	if d.createEvent != nil {
		e := d.createEvent
		if _, err := b.stmt(b.l.st.insDefaultEvent).ExecContext(b.ctx, e.ID, e.Points, e.Period, e.Volume); err != nil {
			return Outcome{}, fmt.Errorf("ingest: create event: %w", err)
		}
		b.events[e.ID] = e
	}
	if d.enroll {
		if _, err := b.stmt(b.l.st.enroll).ExecContext(b.ctx, c.ChipNumber, d.points, protocol.FormatTime(x.ReceivedAt)); err != nil {
			return Outcome{}, fmt.Errorf("ingest: enroll: %w", err)
		}
	} else if d.points != 0 {
		if _, err := b.stmt(b.l.st.addPoints).ExecContext(b.ctx, d.points, c.ChipNumber); err != nil {
			return Outcome{}, fmt.Errorf("ingest: add points: %w", err)
		}
	}
	return Outcome{Result: d.res, Payload: payload}, nil
}

// event looks an event up once per batch (nil in the cache: not found).
func (b *batch) event(id string) (Event, bool, error) {
	if e, ok := b.events[id]; ok {
		if e == nil {
			return Event{}, false, nil
		}
		return *e, true, nil
	}
	if b.foreseeing() {
		return Event{}, false, errUnforeseen
	}
	e, ok, err := b.l.event(b.ctx, b.stmt(b.l.st.selEvent), id)
	if err != nil {
		return Event{}, false, err
	}
	if !ok {
		b.events[id] = nil
		return Event{}, false, nil
	}
	b.events[id] = &e
	return e, true, nil
}

// replay answers an id that is already in the ledger with its stored bytes.
func (b *batch) replay(c protocol.Checkin) (Outcome, error) {
	var device string
	var payload []byte
	if err := b.stmt(b.l.st.selCheckin).QueryRowContext(b.ctx, c.ID).Scan(&device, &payload); err != nil {
		return Outcome{}, fmt.Errorf("ingest: read back %s: %w", c.ID, err)
	}
	if device != c.DeviceID {
		res := protocol.Result{V: protocol.Version, ID: c.ID, Status: protocol.StatusInvalidRequest, EndUserMessage: msgInvalid}
		return Outcome{Result: res, Payload: res.Encode(), Collision: true}, nil
	}
	res, err := protocol.DecodeResult(payload)
	if err != nil {
		return Outcome{}, fmt.Errorf("ingest: stored result of %s: %w", c.ID, err)
	}
	return Outcome{Result: res, Payload: payload, Replay: true}, nil
}

func (b *batch) decide(x Input) (decision, error) {
	c := x.Checkin
	d := decision{datedMs: x.ReceivedAt.UnixMilli()}
	refuse := func(status string, total int, msg map[string]string) (decision, error) {
		d.res = protocol.Result{Status: status, TotalPoints: total, EndUserMessage: msg}
		return d, nil
	}
	if err := protocol.CheckChip(c.ChipNumber); err != nil || !cleanText(c.EventID) {
		return refuse(protocol.StatusInvalidRequest, 0, msgInvalid)
	}
	dated, err := b.date(x)
	if err != nil {
		return d, err
	}
	d.datedMs = dated.UnixMilli()
	if b.aheadOfReceipt(x) || dated.Before(x.ReceivedAt.Add(-b.l.o.MaxAge)) {
		return refuse(protocol.StatusCheckinNotAllowed, 0, msgBadDate)
	}

	// The event is the device's assignment in force at the tap's date; only
	// with EnrollUnknown (the demo) does an event the device was never
	// assigned book as before, from the events table or the defaults.
	a, assigned, known, err := b.assignment(c.DeviceID, c.EventID, dated)
	if err != nil {
		return d, err
	}
	var ev Event
	switch {
	case assigned:
		ev = a.Event
	case known:
		return refuse(protocol.StatusCheckinNotAllowed, 0, msgNotHere)
	case !b.l.o.EnrollUnknown:
		return refuse(protocol.StatusEventNotFound, 0, msgNoEvent)
	default:
		e, ok, err := b.event(c.EventID)
		if err != nil {
			return d, err
		}
		if !ok {
			e = b.l.o.Default
			e.ID = c.EventID
			d.createEvent = &e
		}
		ev = e
	}

	// The passholder and the saved checkins of its period, in one round
	// trip (the count is not needed when the card is refused before it).
	from, until := bucketMs(ev.Period, dated, b.l.o.Location)
	found, total, blocked, n, err := b.holderSaved(c.ChipNumber, ev.ID, from, until)
	if err != nil {
		return d, err
	}
	if !found {
		if !b.l.o.EnrollUnknown {
			return refuse(protocol.StatusPassholderNotFound, 0, msgNoPassholder)
		}
		d.enroll = true
	}
	if blocked {
		return refuse(protocol.StatusCardBlocked, 0, msgBlocked)
	}

	if !ev.ValidFrom.IsZero() && dated.Before(ev.ValidFrom) {
		return refuse(protocol.StatusCheckinNotAllowed, total, msgNotStarted)
	}
	if !ev.ValidUntil.IsZero() && !dated.Before(ev.ValidUntil) {
		return refuse(protocol.StatusCheckinNotAllowed, total, msgEnded)
	}

	if n >= ev.Volume {
		d.res = protocol.Result{Status: protocol.StatusMaximumReached, TotalPoints: total,
			EndUserMessage: maximumMessage(ev.Period, ev.Volume)}
		return d, nil
	}
	d.points = ev.Points
	d.res = protocol.Result{Status: protocol.StatusSaved, NewPoints: ev.Points, TotalPoints: total + ev.Points,
		EndUserMessage: savedMessage(ev.Points, total+ev.Points)}
	return d, nil
}

// aheadOfReceipt: a synced tappedAt later than its receipt by more than the
// skew (a broken or forged clock).
func (b *batch) aheadOfReceipt(x Input) bool {
	if !x.Checkin.ClockSynced {
		return false
	}
	t, err := protocol.ParseTime(x.Checkin.TappedAt)
	return err == nil && t.After(x.ReceivedAt.Add(b.l.o.Skew))
}

// syncedDate is the date of a tap whose clock was synchronised: its
// tappedAt, but never after the receipt (nor when it does not parse).
func syncedDate(x Input) time.Time {
	t, err := protocol.ParseTime(x.Checkin.TappedAt)
	if err != nil || t.After(x.ReceivedAt) {
		return x.ReceivedAt
	}
	return t
}

// date is the instant the rules apply to: the kiosk's tappedAt when its clock
// was synchronised (but never after the receipt), otherwise the receipt
// corrected by how long before the boot's latest known uptime the tap was.
func (b *batch) date(x Input) (time.Time, error) {
	c := x.Checkin
	if c.ClockSynced {
		return syncedDate(x), nil
	}
	if !usesBoot(c) {
		return x.ReceivedAt, nil
	}
	upMs, rcvMs, ok, err := b.bootOf(c.DeviceID, c.BootID)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return x.ReceivedAt, nil
	}
	t := time.UnixMilli(rcvMs - (upMs - c.UptimeMs))
	if t.After(x.ReceivedAt) {
		t = x.ReceivedAt
	}
	return t, nil
}
