package fleet

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/uitpas/tap-kiosk/internal/sqlbind"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/protocol"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Errors callers branch on.
var (
	ErrInvalid  = errors.New("invalid value")
	ErrNotFound = errors.New("not found")
)

// States of a device.
const (
	StateOnline  = "online"
	StateOffline = "offline"
	// StateUnknown is a device known by its checkins only, without a Status.
	StateUnknown = "unknown"
)

// Causes of a transition.
const (
	CauseStatus = "status" // a Status with online true or false
	CauseWill   = "will"   // the last will (or the forwarder's own offline message)
)

// Opts configure a Registry.
type Opts struct {
	Logger *slog.Logger
	Clock  clock.Clock // when migrations were applied
}

// Registry is the fleet registry in the ledger's database. Its methods are
// safe for concurrent use; on PostgreSQL several ingests may write one
// registry at once (each device's row is locked while it is updated).
type Registry struct {
	db  *sql.DB
	pg  bool
	log *slog.Logger
	clk clock.Clock
}

// Open applies the registry's migrations to db and returns the Registry.
// dialect is "sqlite" or "postgres" (ingest.Ledger's Dialect).
func Open(ctx context.Context, db *sql.DB, dialect string, o Opts) (*Registry, error) {
	if db == nil {
		return nil, fmt.Errorf("fleet: open without a database: %w", ErrInvalid)
	}
	if dialect != "sqlite" && dialect != "postgres" {
		return nil, fmt.Errorf("fleet: dialect %q (want sqlite or postgres): %w", dialect, ErrInvalid)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	r := &Registry{db: db, pg: dialect == "postgres", log: o.Logger, clk: o.Clock}
	if err := r.migrate(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// bind rewrites ? placeholders as $1, $2, … on PostgreSQL.
func (r *Registry) bind(q string) string {
	if !r.pg {
		return q
	}
	return sqlbind.Dollar(q)
}

func (r *Registry) migrate(ctx context.Context) error {
	dir := "migrations/sqlite/*.sql"
	if r.pg {
		dir = "migrations/postgres/*.sql"
	}
	names, err := fs.Glob(migrations, dir)
	if err != nil {
		return fmt.Errorf("fleet: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := r.migrateOne(ctx, name); err != nil {
			return fmt.Errorf("fleet: migrate %s: %w", name, err)
		}
	}
	return nil
}

func (r *Registry) migrateOne(ctx context.Context, name string) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if r.pg {
		// Instances starting at once migrate one after the other; keyed by
		// schema as the ledger's lock is.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('kiosk-fleet migrate ' || current_schema(), 0))`); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS fleet_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, r.bind(`SELECT count(*) FROM fleet_migrations WHERE version = ?`), name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, r.bind(`INSERT INTO fleet_migrations (version, applied_at) VALUES (?, ?)`),
		name, protocol.FormatTime(r.clk.Now())); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	r.log.Info("fleet registry migrated", "migration", name)
	return nil
}

// Message is one Status as the ingest received it.
type Message struct {
	Status protocol.Status
	// Raw is the payload as received, kept whole so that fields this
	// package does not know survive.
	Raw        []byte
	ReceivedAt time.Time
	// Retained says the broker delivered it from its retained store (on a
	// new subscription) rather than as it was published.
	Retained bool
}

// IsWill reports whether m is a last will: online false and no "at".
func (m Message) IsWill() bool { return !m.Status.Online && m.Status.At == "" }

// Outcome says what Apply did with one message.
type Outcome int

// Outcomes of Apply.
const (
	Applied    Outcome = iota // stored (and maybe a transition)
	Transition                // stored, and the device changed state
	Duplicate                 // the same as what is stored: nothing changed
	Stale                     // older than the stored Status: nothing changed
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Transition:
		return "transition"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// row is what Apply reads of a device before changing it.
type row struct {
	found        bool
	online       sql.NullBool
	lastSeen     int64
	raw          sql.NullString
	statusAt     sql.NullInt64
	statusSynced sql.NullBool
	lastCheckin  sql.NullInt64
	firstSeen    int64
}

// Apply stores msgs (in order) and the checkins booked (device → when) in
// one transaction, and says what became of each message.
func (r *Registry) Apply(ctx context.Context, msgs []Message, checkins map[string]time.Time) ([]Outcome, error) {
	for _, m := range msgs {
		if !protocol.ValidDeviceID(m.Status.DeviceID) {
			return nil, fmt.Errorf("fleet: apply: device id %q: %w", m.Status.DeviceID, ErrInvalid)
		}
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("fleet: apply: %w", err)
	}
	defer tx.Rollback()
	out := make([]Outcome, len(msgs))
	for i, m := range msgs {
		if out[i], err = r.applyOne(ctx, tx, m); err != nil {
			return nil, fmt.Errorf("fleet: apply status of %s: %w", m.Status.DeviceID, err)
		}
	}
	devices := make([]string, 0, len(checkins))
	for d := range checkins {
		devices = append(devices, d)
	}
	sort.Strings(devices) // a fixed lock order on PostgreSQL
	for _, d := range devices {
		ms := checkins[d].UnixMilli()
		if _, err := tx.ExecContext(ctx, r.bind(`INSERT INTO fleet_devices (device_id, first_seen_ms, last_seen_ms, last_checkin_ms)
			VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET
			last_checkin_ms = CASE WHEN fleet_devices.last_checkin_ms IS NULL OR fleet_devices.last_checkin_ms < excluded.last_checkin_ms
				THEN excluded.last_checkin_ms ELSE fleet_devices.last_checkin_ms END,
			last_seen_ms = CASE WHEN fleet_devices.last_seen_ms < excluded.last_seen_ms
				THEN excluded.last_seen_ms ELSE fleet_devices.last_seen_ms END`), d, ms, ms, ms); err != nil {
			return nil, fmt.Errorf("fleet: apply checkin of %s: %w", d, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("fleet: apply: commit: %w", err)
	}
	return out, nil
}

func (r *Registry) load(ctx context.Context, tx *sql.Tx, device string) (row, error) {
	q := `SELECT online, last_seen_ms, first_seen_ms, status_json, status_at_ms, status_synced, last_checkin_ms
		FROM fleet_devices WHERE device_id = ?`
	if r.pg {
		q += ` FOR UPDATE`
	}
	var w row
	err := tx.QueryRowContext(ctx, r.bind(q), device).Scan(&w.online, &w.lastSeen, &w.firstSeen, &w.raw, &w.statusAt, &w.statusSynced, &w.lastCheckin)
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, nil
	}
	if err != nil {
		return row{}, err
	}
	w.found = true
	return w, nil
}

func (r *Registry) applyOne(ctx context.Context, tx *sql.Tx, m Message) (Outcome, error) {
	device := m.Status.DeviceID
	if r.pg {
		// The row may not exist yet: a lock on the device id keeps two
		// ingests from both inserting its first row and transition.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('kiosk-fleet device ' || current_schema() || ' ' || $1, 0))`, device); err != nil {
			return 0, err
		}
	}
	w, err := r.load(ctx, tx, device)
	if err != nil {
		return 0, err
	}
	recv := m.ReceivedAt.UnixMilli()
	if m.IsWill() {
		if w.found && w.online.Valid && !w.online.Bool {
			return Duplicate, nil // offline already (a retained will again)
		}
		if !w.found {
			_, err = tx.ExecContext(ctx, r.bind(`INSERT INTO fleet_devices (device_id, online, since_ms, first_seen_ms, last_seen_ms)
				VALUES (?, false, ?, ?, ?)`), device, recv, recv, recv)
		} else {
			_, err = tx.ExecContext(ctx, r.bind(`UPDATE fleet_devices SET online = false, since_ms = ? WHERE device_id = ?`), recv, device)
		}
		if err != nil {
			return 0, err
		}
		return Transition, r.transition(ctx, tx, device, recv, false, CauseWill)
	}

	if w.found && w.raw.Valid && bytes.Equal(bytes.TrimSpace([]byte(w.raw.String)), bytes.TrimSpace(m.Raw)) {
		return Duplicate, nil
	}
	at, atErr := protocol.ParseTime(m.Status.At)
	hasAt := atErr == nil
	synced := hasAt && m.Status.ClockSynced
	if w.found && synced && w.statusAt.Valid && w.statusSynced.Valid && w.statusSynced.Bool && at.UnixMilli() < w.statusAt.Int64 {
		return Stale, nil
	}
	// heard is when the kiosk said it: the receive time, or for a retained
	// Status the kiosk's own (synchronised) time when it is earlier.
	heard := recv
	if m.Retained && synced && at.UnixMilli() < recv {
		heard = at.UnixMilli()
	}
	changed := !w.found || !w.online.Valid || w.online.Bool != m.Status.Online
	var atMs sql.NullInt64
	if hasAt {
		atMs = sql.NullInt64{Int64: at.UnixMilli(), Valid: true}
	}
	var cert sql.NullInt64
	if m.Status.CertExpiresInDays != nil {
		cert = sql.NullInt64{Int64: int64(*m.Status.CertExpiresInDays), Valid: true}
	}
	s := m.Status
	cols := []any{s.Online, string(m.Raw), atMs, synced, recv, s.Version, s.EventID, s.Pending, s.OldestPendingS,
		s.ClockSynced, s.Reader, s.Display, s.Indicator, s.Storage, cert}
	if !w.found {
		_, err = tx.ExecContext(ctx, r.bind(`INSERT INTO fleet_devices (online, status_json, status_at_ms, status_synced,
			status_received_ms, version, event_id, pending, oldest_pending_s, clock_synced, reader, display, indicator,
			storage, cert_expires_days, device_id, since_ms, first_seen_ms, last_seen_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), append(cols, device, heard, heard, heard)...)
	} else {
		since := `since_ms`
		if changed {
			since = `?`
			cols = append(cols, heard)
		}
		cols = append(cols, max(w.lastSeen, heard), device)
		_, err = tx.ExecContext(ctx, r.bind(`UPDATE fleet_devices SET online = ?, status_json = ?, status_at_ms = ?,
			status_synced = ?, status_received_ms = ?, version = ?, event_id = ?, pending = ?, oldest_pending_s = ?,
			clock_synced = ?, reader = ?, display = ?, indicator = ?, storage = ?, cert_expires_days = ?,
			since_ms = `+since+`, last_seen_ms = ? WHERE device_id = ?`), cols...)
	}
	if err != nil {
		return 0, err
	}
	if s.Outcomes != nil && refusalsChanged(w.raw, s.Outcomes) {
		if err := r.recordOutcomes(ctx, tx, device, recv, s.EventID, s.Outcomes); err != nil {
			return 0, err
		}
	}
	if !changed {
		return Applied, nil
	}
	return Transition, r.transition(ctx, tx, device, heard, s.Online, CauseStatus)
}

func (r *Registry) transition(ctx context.Context, tx *sql.Tx, device string, at int64, online bool, cause string) error {
	_, err := tx.ExecContext(ctx, r.bind(`INSERT INTO fleet_transitions (device_id, at_ms, online, cause) VALUES (?, ?, ?, ?)`),
		device, at, online, cause)
	return err
}

// Extra holds Status fields that protocol.Status may not (yet) decode, read
// from the raw payload.
type Extra struct {
	ConfigsRejected *int64           `json:"configsRejected,omitempty"`
	Outcomes        map[string]int64 `json:"outcomes,omitempty"`
	SeqHigh         *int64           `json:"seqHigh,omitempty"`
	UptimeS         *int64           `json:"uptimeS,omitempty"`
}

// Device is one kiosk as the registry knows it.
type Device struct {
	ID string
	// State is StateOnline, StateOffline or StateUnknown; Since is when it
	// entered it (zero for unknown).
	State       string
	Since       time.Time
	FirstSeen   time.Time
	LastSeen    time.Time
	LastCheckin time.Time // zero: none booked
	// Status is the last Status (zero without one), decoded from Raw;
	// StatusAt is its "at", StatusReceived when central received it.
	Status         protocol.Status
	Extra          Extra
	Raw            json.RawMessage
	StatusAt       time.Time
	StatusReceived time.Time
}

// HasStatus reports whether a Status of the device was stored.
func (d Device) HasStatus() bool { return len(d.Raw) > 0 }

func msTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

const deviceCols = `device_id, online, since_ms, first_seen_ms, last_seen_ms, last_checkin_ms, status_json,
	status_at_ms, status_received_ms FROM fleet_devices`

func scanDevice(sc interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var online sql.NullBool
	var since, last, chk, at, recv sql.NullInt64
	var first int64
	var raw sql.NullString
	if err := sc.Scan(&d.ID, &online, &since, &first, &last, &chk, &raw, &at, &recv); err != nil {
		return Device{}, err
	}
	switch {
	case !online.Valid:
		d.State = StateUnknown
	case online.Bool:
		d.State = StateOnline
	default:
		d.State = StateOffline
	}
	d.Since, d.LastSeen, d.LastCheckin = msTime(since), msTime(last), msTime(chk)
	d.FirstSeen = time.UnixMilli(first).UTC()
	d.StatusAt, d.StatusReceived = msTime(at), msTime(recv)
	if raw.Valid && raw.String != "" {
		d.Raw = json.RawMessage(raw.String)
		// Stored only after it decoded once; a later protocol change that
		// refuses it still leaves the raw JSON to read.
		_ = json.Unmarshal(d.Raw, &d.Status)
		_ = json.Unmarshal(d.Raw, &d.Extra)
	}
	return d, nil
}

// Devices lists every device, by id.
func (r *Registry) Devices(ctx context.Context) ([]Device, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+deviceCols+` ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("fleet: devices: %w", err)
	}
	defer rows.Close()
	var ds []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("fleet: devices: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet: devices: %w", err)
	}
	return ds, nil
}

// Device returns one device, or ErrNotFound.
func (r *Registry) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(r.db.QueryRowContext(ctx, r.bind(`SELECT `+deviceCols+` WHERE device_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("fleet: device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("fleet: device %s: %w", id, err)
	}
	return d, nil
}

// TransitionRecord is one change of a device's state.
type TransitionRecord struct {
	At     time.Time
	Online bool
	Cause  string
}

// Transitions returns the device's transitions, oldest first.
func (r *Registry) Transitions(ctx context.Context, device string) ([]TransitionRecord, error) {
	rows, err := r.db.QueryContext(ctx, r.bind(`SELECT at_ms, online, cause FROM fleet_transitions WHERE device_id = ? ORDER BY at_ms, id`), device)
	if err != nil {
		return nil, fmt.Errorf("fleet: transitions of %s: %w", device, err)
	}
	defer rows.Close()
	var ts []TransitionRecord
	for rows.Next() {
		var t TransitionRecord
		var ms int64
		if err := rows.Scan(&ms, &t.Online, &t.Cause); err != nil {
			return nil, fmt.Errorf("fleet: transitions of %s: %w", device, err)
		}
		t.At = time.UnixMilli(ms).UTC()
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet: transitions of %s: %w", device, err)
	}
	return ts, nil
}

// Availability is the share of [from, to) the device was online, of the
// part of it whose state is known (before its first transition it is not).
// ok is false when none of the window is known.
func Availability(ts []TransitionRecord, from, to time.Time) (share float64, ok bool) {
	var known, up time.Duration
	for i, t := range ts {
		end := to
		if i+1 < len(ts) {
			end = ts[i+1].At
		}
		start := t.At
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if !end.After(start) {
			continue
		}
		known += end.Sub(start)
		if t.Online {
			up += end.Sub(start)
		}
	}
	if known == 0 {
		return 0, false
	}
	return float64(up) / float64(known), true
}
