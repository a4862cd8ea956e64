package ingest

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// An Assignment is central's decision that a device runs an event: the
// signed Config published on the device's config topic. The rules book a
// checkin only for an event assigned to its device at the tap's date, with
// the assignment's points and constraint, because the kiosk's eventId is
// only what a kiosk (or a stolen kiosk certificate) claims.
//
// An assignment is in force from its issuedAt (less Opts.AssignMargin, for
// the two clocks) until the device's next assignment was issued, plus
// Opts.Handover: a kiosk that was offline when it was given a new activity
// books its old one until it hears of the new one, and those taps are
// genuine.
type Assignment struct {
	DeviceID  string
	Serial    int64
	CounterID string
	// Event holds the id, points, constraint and check-in window.
	Event      Event
	AssignedAt time.Time
	// ReplacedAt is when the device's next assignment was issued (zero: this
	// one is the latest).
	ReplacedAt time.Time
}

// ErrNotBound: a Config that names another device than the topic it came on.
var ErrNotBound = errors.New("ingest: config for another device")

// AssignmentOf reads the assignment a signed Config makes for device (the
// device whose config topic it is on). The signature is checked with pub; a
// Config bound to another device is refused (ErrNotBound). A Config without
// issuedAt is dated at receivedAt.
func AssignmentOf(payload []byte, device string, pub ed25519.PublicKey, receivedAt time.Time) (Assignment, error) {
	c, err := protocol.VerifyConfig(payload, pub)
	if err != nil {
		return Assignment{}, fmt.Errorf("ingest: assignment: %w", err)
	}
	if c.DeviceID != "" && c.DeviceID != device {
		return Assignment{}, fmt.Errorf("%w: serial %d names %q, topic %q", ErrNotBound, c.Serial, c.DeviceID, device)
	}
	a := Assignment{DeviceID: device, Serial: c.Serial, CounterID: c.CounterID, AssignedAt: receivedAt,
		Event: Event{ID: c.EventID, Points: c.Points, Period: c.Constraint.Period, Volume: c.Constraint.Volume}}
	if c.IssuedAt != "" {
		if a.AssignedAt, err = protocol.ParseTime(c.IssuedAt); err != nil {
			return Assignment{}, fmt.Errorf("ingest: assignment serial %d: issuedAt: %w", c.Serial, err)
		}
	}
	for _, b := range []struct {
		s string
		t *time.Time
	}{{c.ValidFrom, &a.Event.ValidFrom}, {c.ValidUntil, &a.Event.ValidUntil}} {
		if b.s == "" {
			continue
		}
		if *b.t, err = protocol.ParseTime(b.s); err != nil {
			return Assignment{}, fmt.Errorf("ingest: assignment serial %d: %w", c.Serial, err)
		}
	}
	return a, a.check()
}

func (a Assignment) check() error {
	if !protocol.ValidDeviceID(a.DeviceID) || a.Serial < 0 || a.AssignedAt.IsZero() {
		return fmt.Errorf("ingest: assignment %s serial %d: %w", a.DeviceID, a.Serial, ErrInvalid)
	}
	if !cleanText(a.Event.ID) || !cleanText(a.CounterID) {
		return fmt.Errorf("ingest: assignment %s serial %d: event or counter id: %w", a.DeviceID, a.Serial, ErrInvalid)
	}
	return a.Event.check()
}

// Assign records an assignment (idempotent: the same device and serial
// again changes nothing) and upserts its event, so that the events table
// shows the latest form of every assigned event. It reports whether the
// assignment was new. Every assignment of the device learns when it was
// replaced, whatever order they are recorded in.
func (l *Ledger) Assign(ctx context.Context, a Assignment) (bool, error) {
	n, err := l.AssignMany(ctx, []Assignment{a})
	return n == 1, err
}

// AssignMany is Assign for several assignments in one transaction (a
// fleet's worth at once); it returns how many were new.
func (l *Ledger) AssignMany(ctx context.Context, as []Assignment) (int, error) {
	for _, a := range as {
		if err := a.check(); err != nil {
			return 0, err
		}
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("ingest: assign: %w", err)
	}
	defer tx.Rollback()
	added := 0
	for _, a := range as {
		ok, err := l.assignTx(ctx, tx, a)
		if err != nil {
			return 0, err
		}
		if ok {
			added++
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("ingest: assign: %w", err)
	}
	return added, nil
}

func (l *Ledger) assignTx(ctx context.Context, tx *sql.Tx, a Assignment) (bool, error) {
	e := a.Event
	r, err := tx.ExecContext(ctx, l.d.bind(`INSERT INTO assignments (device_id, serial, event_id, counter_id, points,
		period, volume, valid_from_ms, valid_until_ms, assigned_ms, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id, serial) DO NOTHING`),
		a.DeviceID, a.Serial, e.ID, a.CounterID, e.Points, e.Period, e.Volume, nullMs(e.ValidFrom), nullMs(e.ValidUntil),
		a.AssignedAt.UnixMilli(), protocol.FormatTime(time.Now()))
	if err != nil {
		return false, fmt.Errorf("ingest: assign %s serial %d: %w", a.DeviceID, a.Serial, err)
	}
	if n, err := r.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, l.d.bind(`UPDATE assignments SET replaced_ms = (SELECT min(n.assigned_ms)
		FROM assignments AS n WHERE n.device_id = assignments.device_id AND n.serial > assignments.serial)
		WHERE device_id = ?`), a.DeviceID); err != nil {
		return false, fmt.Errorf("ingest: assign %s serial %d: %w", a.DeviceID, a.Serial, err)
	}
	if _, err := tx.ExecContext(ctx, l.d.bind(`INSERT INTO events (id, points, period, volume, valid_from_ms, valid_until_ms)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET points = excluded.points, period = excluded.period,
		volume = excluded.volume, valid_from_ms = excluded.valid_from_ms, valid_until_ms = excluded.valid_until_ms`),
		e.ID, e.Points, e.Period, e.Volume, nullMs(e.ValidFrom), nullMs(e.ValidUntil)); err != nil {
		return false, fmt.Errorf("ingest: assign %s serial %d: event: %w", a.DeviceID, a.Serial, err)
	}
	return true, nil
}

// Assignments returns the device's assignments, newest first ("" for every
// device's).
func (l *Ledger) Assignments(ctx context.Context, device string) ([]Assignment, error) {
	rows, err := l.db.QueryContext(ctx, l.d.bind(`SELECT device_id, serial, event_id, counter_id, points, period, volume,
		valid_from_ms, valid_until_ms, assigned_ms, replaced_ms FROM assignments WHERE ? = '' OR device_id = ?
		ORDER BY device_id, serial DESC`), device, device)
	if err != nil {
		return nil, fmt.Errorf("ingest: assignments: %w", err)
	}
	defer rows.Close()
	var out []Assignment
	for rows.Next() {
		a, err := scanAssignment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ingest: assignments: %w", err)
	}
	return out, nil
}

// scanner is a row of database/sql or of pgx.
type scanner interface{ Scan(dest ...any) error }

func scanAssignment(rows scanner) (Assignment, error) {
	var a Assignment
	var from, until, replaced sql.NullInt64
	var assigned int64
	if err := rows.Scan(&a.DeviceID, &a.Serial, &a.Event.ID, &a.CounterID, &a.Event.Points, &a.Event.Period,
		&a.Event.Volume, &from, &until, &assigned, &replaced); err != nil {
		return Assignment{}, fmt.Errorf("ingest: assignments: %w", err)
	}
	a.AssignedAt = time.UnixMilli(assigned).UTC()
	for _, p := range []struct {
		n sql.NullInt64
		t *time.Time
	}{{from, &a.Event.ValidFrom}, {until, &a.Event.ValidUntil}, {replaced, &a.ReplacedAt}} {
		if p.n.Valid {
			*p.t = time.UnixMilli(p.n.Int64).UTC()
		}
	}
	return a, nil
}

// InForce reports whether the ledger books a tap of a dated t by a: from
// AssignMargin before it was issued until Handover after it was replaced.
func (l *Ledger) InForce(a Assignment, t time.Time) bool { return a.inForce(t, l.o) }

// inForce reports whether a books a tap dated t.
func (a Assignment) inForce(t time.Time, o Opts) bool {
	if t.Before(a.AssignedAt.Add(-o.AssignMargin)) {
		return false
	}
	return a.ReplacedAt.IsZero() || t.Before(a.ReplacedAt.Add(o.Handover))
}

// assignKey is the key of a (device, event)'s assignments, in a batch and
// in the set-based path's cache.
func assignKey(device, event string) string { return device + "\x00" + event }

// assignment finds the device's assignment of event in force at t. known
// says the device has any assignment of the event at all.
func (b *batch) assignment(device, event string, t time.Time) (a Assignment, ok, known bool, err error) {
	key := assignKey(device, event)
	as, cached := b.assigns[key]
	if !cached && b.foreseeing() {
		return a, false, false, errUnforeseen
	}
	if !cached {
		rows, err := b.stmt(b.l.st.selAssign).QueryContext(b.ctx, device, event)
		if err != nil {
			return a, false, false, fmt.Errorf("ingest: assignment: %w", err)
		}
		for rows.Next() {
			x, err := scanAssignment(rows)
			if err != nil {
				rows.Close()
				return a, false, false, err
			}
			as = append(as, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return a, false, false, fmt.Errorf("ingest: assignment: %w", err)
		}
		b.assigns[key] = as
	}
	for _, x := range as { // newest first: the latest one in force wins
		if x.inForce(t, b.l.o) {
			return x, true, true, nil
		}
	}
	return a, false, len(as) > 0, nil
}

// AssignEvent records e as device's next assignment (the serial after its
// latest), issued at at: for the demo, `kiosk-ingest -assign` and tests,
// where no signed Config exists.
func (l *Ledger) AssignEvent(ctx context.Context, device, counter string, e Event, at time.Time) (Assignment, error) {
	var serial int64
	if err := l.db.QueryRowContext(ctx, l.d.bind(`SELECT coalesce(max(serial), 0) + 1 FROM assignments WHERE device_id = ?`),
		device).Scan(&serial); err != nil {
		return Assignment{}, fmt.Errorf("ingest: assign %s: %w", device, err)
	}
	a := Assignment{DeviceID: device, Serial: serial, CounterID: counter, Event: e, AssignedAt: at}
	_, err := l.Assign(ctx, a)
	return a, err
}
