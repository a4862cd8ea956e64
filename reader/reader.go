// Package reader defines what the kiosk core needs from a card reader, and
// holds the simulated reader the demo and tests use. Chip drivers live in
// subpackages (reader/pn532).
package reader

import (
	"context"
	"encoding/hex"
	"strings"
	"time"
)

// Tap is one card entering the field.
type Tap struct {
	// UID is the card's ISO 14443-A UID in anticollision order (4, 7 or 10
	// bytes for a good read; the core judges the rest).
	UID []byte
	// At is when the reader saw the card, from the injected clock (it carries
	// the monotonic reading, which the core's debounce uses).
	At time.Time
}

// Chip renders the UID as the contract's chip number: upper-case hex.
func (t Tap) Chip() string { return strings.ToUpper(hex.EncodeToString(t.UID)) }

// State is a reader's health.
type State int

// Reader states.
const (
	OK State = iota
	Fault
)

func (s State) String() string {
	if s == OK {
		return "ok"
	}
	return "fault"
}

// Health is a change of the reader's state; Err says why a fault is a fault
// (for the journal, never for the screen).
type Health struct {
	State State
	Err   error
}

// Event is what a Reader delivers: a tap or a change of health (exactly one
// of the two is set).
type Event struct {
	Tap    *Tap
	Health *Health
}

// Reader reads cards until its context ends.
type Reader interface {
	// Run delivers events until ctx is done, then returns ctx.Err() (or
	// another error if it cannot go on at all). It must not block forever
	// on a full channel once ctx is done.
	Run(ctx context.Context, events chan<- Event) error
	String() string
}

// Presenter is a reader that a test or the control socket can put a card on.
// The simulated reader is one; so is the PN532 driver over its emulator.
type Presenter interface {
	// Present places a card with uid in the field for a moment.
	Present(ctx context.Context, uid []byte) error
}

// ParseChip decodes a chip number typed by a person (hex, any case, spaces
// and colons allowed) into UID bytes.
func ParseChip(s string) ([]byte, error) {
	s = strings.NewReplacer(" ", "", ":", "", "-", "").Replace(s)
	return hex.DecodeString(s)
}
