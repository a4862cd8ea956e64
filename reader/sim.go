package reader

import (
	"context"
	"errors"
	"fmt"

	"github.com/uitpas/tap-kiosk/clock"
)

// Sim is the simulated reader: taps come from Present (the control socket's
// tap op), health from SetHealth.
type Sim struct {
	clk clock.Clock
	in  chan Event
}

// NewSim returns a simulated reader using clk for tap times.
func NewSim(clk clock.Clock) *Sim {
	return &Sim{clk: clk, in: make(chan Event)}
}

// ErrNotRunning is returned by Present when no Run is reading.
var ErrNotRunning = errors.New("reader: simulated reader not running")

func (s *Sim) String() string { return "sim" }

// Run forwards presented cards until ctx is done.
func (s *Sim) Run(ctx context.Context, events chan<- Event) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-s.in:
			select {
			case events <- ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// Present hands a tap of uid to the running reader.
func (s *Sim) Present(ctx context.Context, uid []byte) error {
	t := Tap{UID: append([]byte(nil), uid...), At: s.clk.Now()}
	select {
	case s.in <- Event{Tap: &t}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reader: present: %w", ctx.Err())
	}
}

// SetHealth reports a change of health, as a real driver does on a fault.
func (s *Sim) SetHealth(ctx context.Context, h Health) error {
	select {
	case s.in <- Event{Health: &h}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reader: health: %w", ctx.Err())
	}
}
