package fleet

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// The kiosk-local refusals (already-saved, blocked, …) never reach central
// as checkins; each kiosk counts them in its Status "outcomes" (since its
// queue was created). The registry keeps a row of those counts whenever a
// refusal count changes, so the refusals of a range are differences: the
// reports per device, day, event and counter are built on OutcomeDeltas.

// OutcomeDelta is what one kiosk counted between two Status: the increase
// of each outcome (saved left out: central books those itself), dated when
// the later Status was received and attributed to the event it served then.
type OutcomeDelta struct {
	DeviceID string
	EventID  string
	At       time.Time
	Counts   map[string]int64
}

// refusalsChanged reports whether a Status's outcomes differ from the
// stored raw Status's in anything but saved.
func refusalsChanged(storedRaw sql.NullString, now map[string]int64) bool {
	var old Extra
	if storedRaw.Valid {
		json.Unmarshal([]byte(storedRaw.String), &old)
	}
	a, b := maps.Clone(old.Outcomes), maps.Clone(now)
	delete(a, "saved")
	delete(b, "saved")
	return !maps.Equal(a, b)
}

// recordOutcomes adds a row of device's counts at ms, inside tx.
func (r *Registry) recordOutcomes(ctx context.Context, tx *sql.Tx, device string, ms int64, event string, counts map[string]int64) error {
	b, _ := json.Marshal(counts)
	_, err := tx.ExecContext(ctx, r.bind(`INSERT INTO fleet_outcomes (device_id, received_ms, event_id, counts) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id, received_ms) DO UPDATE SET event_id = excluded.event_id, counts = excluded.counts`),
		device, ms, event, string(b))
	return err
}

// OutcomeDeltas returns the increases counted by every kiosk in [from,
// until) (a zero bound is open), one per Status that changed them. A count
// that went down (the kiosk's queue was reset) starts again from zero, as
// a Prometheus counter does. The first row of a kiosk counts from zero: its
// counts start with its queue, which is new when central first hears it.
func (r *Registry) OutcomeDeltas(ctx context.Context, from, until time.Time) ([]OutcomeDelta, error) {
	q := `SELECT device_id, received_ms, event_id, counts FROM fleet_outcomes`
	var args []any
	if !until.IsZero() {
		q += ` WHERE received_ms < ?`
		args = append(args, until.UnixMilli())
	}
	rows, err := r.db.QueryContext(ctx, r.bind(q+` ORDER BY device_id, received_ms`), args...)
	if err != nil {
		return nil, fmt.Errorf("fleet: outcome history: %w", err)
	}
	defer rows.Close()
	var out []OutcomeDelta
	var dev string
	prev := map[string]int64{}
	for rows.Next() {
		var d, ev, raw string
		var ms int64
		if err := rows.Scan(&d, &ms, &ev, &raw); err != nil {
			return nil, fmt.Errorf("fleet: outcome history: %w", err)
		}
		if d != dev {
			dev, prev = d, map[string]int64{}
		}
		var cur map[string]int64
		if json.Unmarshal([]byte(raw), &cur) != nil {
			continue
		}
		at := time.UnixMilli(ms).UTC()
		delta := map[string]int64{}
		for k, v := range cur {
			if k == "saved" {
				continue
			}
			inc := v - prev[k]
			if v < prev[k] {
				inc = v // reset: counted again from zero
			}
			if inc > 0 {
				delta[k] = inc
			}
		}
		prev = cur
		if len(delta) > 0 && (from.IsZero() || !at.Before(from)) {
			out = append(out, OutcomeDelta{DeviceID: d, EventID: ev, At: at, Counts: delta})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet: outcome history: %w", err)
	}
	return out, nil
}
