package report

import (
	"context"
	"fmt"
	"time"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
)

// FleetLocal is the LocalSource of the fleet registry: the refusals each
// kiosk counted (its Status "outcomes"), as differences of the registry's
// outcome history, dated when central received the Status that carried
// them. A kiosk's Status names its event, not its counter: the counter of
// an event is the one its checkins in the ledger name most often.
type FleetLocal struct {
	Registry *fleet.Registry
	Ledger   *ingest.Ledger
}

// LocalOutcomes implements LocalSource.
func (f FleetLocal) LocalOutcomes(ctx context.Context, q Query, from, until time.Time) (map[Key]map[string]int64, error) {
	deltas, err := f.Registry.OutcomeDeltas(ctx, from, until)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	loc := q.Location
	if loc == nil {
		if loc, err = time.LoadLocation(DefaultZone); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
	}
	var counters map[string]string
	if q.By == ByCounter || q.By == ByCounterEvent {
		if counters, err = f.counterOfEvents(ctx); err != nil {
			return nil, err
		}
	}
	out := map[Key]map[string]int64{}
	for _, d := range deltas {
		var k Key
		switch q.By {
		case ByCounter:
			k.CounterID = counters[d.EventID]
		case ByEvent:
			k.EventID = d.EventID
		case ByDevice:
			k.DeviceID = d.DeviceID
		case ByDay:
			k.Day = d.At.In(loc).Format(time.DateOnly)
		case ByCounterEvent:
			k.CounterID, k.EventID = counters[d.EventID], d.EventID
		}
		m := out[k]
		if m == nil {
			m = map[string]int64{}
			out[k] = m
		}
		for o, n := range d.Counts {
			m[o] += n
		}
	}
	return out, nil
}

// counterOfEvents maps each event to the counter its checkins name most.
func (f FleetLocal) counterOfEvents(ctx context.Context) (map[string]string, error) {
	rows, err := f.Ledger.DB().QueryContext(ctx,
		`SELECT event_id, counter_id, count(*) FROM checkins GROUP BY event_id, counter_id`)
	if err != nil {
		return nil, fmt.Errorf("report: counters of events: %w", err)
	}
	defer rows.Close()
	best := map[string]int64{}
	out := map[string]string{}
	for rows.Next() {
		var ev, counter string
		var n int64
		if err := rows.Scan(&ev, &counter, &n); err != nil {
			return nil, fmt.Errorf("report: counters of events: %w", err)
		}
		if n > best[ev] || n == best[ev] && counter > out[ev] {
			best[ev], out[ev] = n, counter
		}
	}
	return out, rows.Err()
}
