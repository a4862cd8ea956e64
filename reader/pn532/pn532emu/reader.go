package pn532emu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
)

// EmulatedReader is the real driver over an emulated chip: what kioskd runs
// for `[reader] driver = "pn532-emulated"`, so the demo exercises the driver.
type EmulatedReader struct {
	Chip *Chip
	Dev  *pn532.Dev
}

var (
	_ reader.Reader    = (*EmulatedReader)(nil)
	_ reader.Presenter = (*EmulatedReader)(nil)
)

// NewReader returns pn532.DefaultOpts's driver over a chip with
// DefaultOpts, both on clk.
func NewReader(clk clock.Clock, log *slog.Logger) (*EmulatedReader, error) {
	return NewReaderOpts(clk, log, nil, nil)
}

// NewReaderOpts is NewReader with options for the chip and the driver (nil
// means their defaults).
func NewReaderOpts(clk clock.Clock, log *slog.Logger, chip *Opts, drv *pn532.Opts) (*EmulatedReader, error) {
	c := New(clk, chip)
	d, err := pn532.NewSPI(c, c.IRQ(), c.Reset(), clk, log, drv)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("pn532emu: %w", err)
	}
	return &EmulatedReader{Chip: c, Dev: d}, nil
}

// String names the reader.
func (e *EmulatedReader) String() string { return "pn532-emulated" }

// Run runs the driver.
func (e *EmulatedReader) Run(ctx context.Context, events chan<- reader.Event) error {
	return e.Dev.Run(ctx, events)
}

// Present places a DESFire card with uid in the emulated field until a poll
// has seen it, takes it away, and returns once a poll has seen the field
// without it, so that presenting the same card again is a new tap. With no
// Run polling (or a faulted chip) it waits until ctx ends and says so.
func (e *EmulatedReader) Present(ctx context.Context, uid []byte) error {
	if n := len(uid); n != 4 && n != 7 && n != 10 {
		return fmt.Errorf("pn532emu: present: a UID has 4, 7 or 10 bytes, not %d", n)
	}
	e.Chip.Place(DESFire(uid))
	err := e.Chip.WaitListed(ctx, uid)
	e.Chip.Remove(uid)
	if err != nil {
		return fmt.Errorf("pn532emu: present: %w", err)
	}
	// The list after the one in progress at the removal began after it, so
	// it saw the field empty (the one in progress may still have seen the
	// card, and then the card would never have left).
	if err := e.Chip.WaitListSeq(ctx, e.Chip.ListSeq()+1); err != nil {
		return fmt.Errorf("pn532emu: present: %w", err)
	}
	return nil
}

// Halt halts the driver and switches the chip off.
func (e *EmulatedReader) Halt() error {
	return errors.Join(e.Dev.Halt(), e.Chip.Close())
}
