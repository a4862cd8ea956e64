package ingest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/uitpas/tap-kiosk/protocol"
)

// ParseEvent reads an event from the -event flag's form
// ID:PERIOD:VOLUME:POINTS, optionally followed by @FROM/UNTIL (RFC 3339
// instants; either side may be empty for an open bound), e.g.
// "evt-7781:DAY:1:1@2026-11-24T08:00:00Z/2026-11-24T22:00:00Z".
func ParseEvent(s string) (Event, error) {
	spec, window, hasWindow := strings.Cut(s, "@")
	f := strings.Split(spec, ":")
	if len(f) < 4 {
		return Event{}, fmt.Errorf("ingest: event %q: want ID:PERIOD:VOLUME:POINTS[@FROM/UNTIL]: %w", s, ErrInvalid)
	}
	n := len(f)
	e := Event{ID: strings.Join(f[:n-3], ":"), Period: strings.ToUpper(f[n-3])}
	var err error
	if e.Volume, err = strconv.Atoi(f[n-2]); err != nil {
		return Event{}, fmt.Errorf("ingest: event %q: volume %q: %w", s, f[n-2], ErrInvalid)
	}
	if e.Points, err = strconv.Atoi(f[n-1]); err != nil {
		return Event{}, fmt.Errorf("ingest: event %q: points %q: %w", s, f[n-1], ErrInvalid)
	}
	if hasWindow {
		from, until, ok := strings.Cut(window, "/")
		if !ok {
			return Event{}, fmt.Errorf("ingest: event %q: window %q: want FROM/UNTIL: %w", s, window, ErrInvalid)
		}
		if from != "" {
			if e.ValidFrom, err = protocol.ParseTime(from); err != nil {
				return Event{}, fmt.Errorf("ingest: event %q: from: %w", s, ErrInvalid)
			}
		}
		if until != "" {
			if e.ValidUntil, err = protocol.ParseTime(until); err != nil {
				return Event{}, fmt.Errorf("ingest: event %q: until: %w", s, ErrInvalid)
			}
		}
	}
	if err := e.check(); err != nil {
		return Event{}, err
	}
	return e, nil
}
