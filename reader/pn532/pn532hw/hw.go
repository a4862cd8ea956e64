// Package pn532hw wires a pn532.Dev to a Linux host: spidev through periph
// (host.Init happens here and only here) and the IRQ and reset lines through
// the GPIO character device (go-gpiocdev). Everything else in the kiosk
// takes the driver's interfaces and never touches hardware packages.
package pn532hw

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/gpioline"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// The kiosk's wiring (docs/install.md): P70_IRQ on GPIO25 (header pin 22),
// RSTPD_N on GPIO24 (pin 18). By name, looked up on every GPIO chip, which
// works on every Raspberry Pi: the header's lines are not on gpiochip0 on
// every Pi 5 image, and an offset on the wrong chip binds another line
// without a word.
const (
	DefaultIRQ   = "GPIO25"
	DefaultReset = "GPIO24"
)

// Config says where the PN532 is.
type Config struct {
	SPIDev  string // "/dev/spidev0.0"
	SpeedHz int64  // 0 → Opts.Speed, else 1 MHz
	// IRQ and Reset name GPIO lines: "GPIO25" (a line name looked up on
	// every chip: DefaultIRQ, DefaultReset), "gpiochip0:GPIO25" (a name on
	// one chip) or "gpiochip0:25" (chip and offset). IRQ "" → status-byte
	// polling; Reset "" → no hardware reset.
	IRQ   string
	Reset string
	Opts  pn532.Opts // zero fields take pn532.DefaultOpts
}

// ErrUnsupported is returned off Linux.
var ErrUnsupported = errors.New("pn532hw: only on Linux")

// Parts are the opened pieces, for callers that wrap the port (the smoke
// tool records the bus with spitest.Record).
type Parts struct {
	Port  spi.PortCloser
	IRQ   pn532.IRQ   // nil when Config.IRQ is ""
	Reset pn532.Reset // nil when Config.Reset is ""
	// Opts is Config.Opts with the speed applied. The port is not
	// connected: pn532.NewSPI does that, once.
	Opts pn532.Opts
}

// Close releases every part.
func (p Parts) Close() error {
	var errs []error
	if p.IRQ != nil {
		errs = append(errs, p.IRQ.Close())
	}
	if p.Reset != nil {
		errs = append(errs, p.Reset.Close())
	}
	if p.Port != nil {
		errs = append(errs, p.Port.Close())
	}
	return errors.Join(errs...)
}

// Open opens the reader described by cfg. The Dev owns the port and lines:
// its Halt releases them.
func Open(cfg Config, clk clock.Clock, log *slog.Logger) (*pn532.Dev, error) {
	p, err := OpenParts(cfg)
	if err != nil {
		return nil, err
	}
	o := p.Opts
	o.ClosePort = true
	d, err := pn532.NewSPI(p.Port, p.IRQ, p.Reset, clk, log, &o)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("pn532hw: %w", err)
	}
	return d, nil
}

func (cfg Config) opts() pn532.Opts {
	o := cfg.Opts
	if cfg.SpeedHz > 0 {
		o.Speed = physic.Frequency(cfg.SpeedHz) * physic.Hertz
	}
	if o.Speed <= 0 {
		o.Speed = pn532.DefaultOpts.Speed
	}
	return o
}

// lineFinder looks line names up: on every chip, or on one.
type lineFinder interface {
	FindLine(name string) (chip string, offset int, err error)
	FindLineOn(chip, name string) (offset int, err error)
}

// resolve turns a line as Config gives it (the configuration's one form,
// package gpioline) into a chip and an offset: a bare name is searched on
// every chip, a chip:name only on that chip.
func resolve(s string, f lineFinder) (chip string, offset int, err error) {
	ls, err := gpioline.Parse(s)
	if err != nil {
		return "", 0, fmt.Errorf("pn532hw: %w", err)
	}
	switch {
	case ls.Name == "":
		return ls.Chip, ls.Offset, nil
	case ls.Chip == "":
		chip, offset, err = f.FindLine(ls.Name)
	default:
		chip = ls.Chip
		offset, err = f.FindLineOn(ls.Chip, ls.Name)
	}
	if err != nil {
		return "", 0, fmt.Errorf("pn532hw: line %s: %w", s, err)
	}
	return chip, offset, nil
}
