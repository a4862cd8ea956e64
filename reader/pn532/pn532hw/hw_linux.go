//go:build linux

package pn532hw

import (
	"fmt"

	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/warthog618/go-gpiocdev"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"
	"periph.io/x/host/v3"
)

// OpenParts initialises periph, opens the SPI port (probing LSB-first
// support when Opts.BitOrder is auto) and requests the GPIO lines.
func OpenParts(cfg Config) (Parts, error) {
	if _, err := host.Init(); err != nil {
		return Parts{}, fmt.Errorf("pn532hw: periph: %w", err)
	}
	if cfg.SPIDev == "" {
		cfg.SPIDev = "/dev/spidev0.0"
	}
	p := Parts{Opts: cfg.opts()}
	if p.Opts.BitOrder == pn532.BitOrderAuto {
		// spidev answers EINVAL to LSB-first on the Pi's controllers; a
		// port is connected once, so ask on a throwaway handle.
		probe, err := spireg.Open(cfg.SPIDev)
		if err != nil {
			return Parts{}, fmt.Errorf("pn532hw: open %s: %w", cfg.SPIDev, err)
		}
		if _, err := probe.Connect(p.Opts.Speed, spi.Mode0|spi.LSBFirst, 8); err == nil {
			p.Opts.BitOrder = pn532.BitOrderHardware
		} else {
			p.Opts.BitOrder = pn532.BitOrderSoftware
		}
		probe.Close()
	}
	var err error
	if p.Port, err = spireg.Open(cfg.SPIDev); err != nil {
		return Parts{}, fmt.Errorf("pn532hw: open %s: %w", cfg.SPIDev, err)
	}
	if cfg.IRQ != "" {
		irq, err := requestIRQ(cfg.IRQ)
		if err != nil {
			p.Close()
			return Parts{}, err
		}
		p.IRQ = irq
	}
	if cfg.Reset != "" {
		chip, off, err := resolve(cfg.Reset)
		if err != nil {
			p.Close()
			return Parts{}, err
		}
		// High: the chip runs. It is driven low only to reset it.
		l, err := gpiocdev.RequestLine(chip, off, gpiocdev.AsOutput(1), gpiocdev.WithConsumer("pn532-rstpdn"))
		if err != nil {
			p.Close()
			return Parts{}, fmt.Errorf("pn532hw: reset line %s: %w", cfg.Reset, err)
		}
		p.Reset = l
	}
	return p, nil
}

func resolve(s string) (chip string, offset int, err error) {
	ls, err := parseLine(s)
	if err != nil {
		return "", 0, err
	}
	if ls.name == "" {
		return ls.chip, ls.offset, nil
	}
	if ls.chip == "" {
		chip, offset, err = gpiocdev.FindLine(ls.name)
	} else {
		var c *gpiocdev.Chip
		if c, err = gpiocdev.NewChip(ls.chip); err == nil {
			offset, err = c.FindLine(ls.name)
			c.Close()
		}
		chip = ls.chip
	}
	if err != nil {
		return "", 0, fmt.Errorf("pn532hw: line %s: %w", s, err)
	}
	return chip, offset, nil
}

// irqLine adapts a go-gpiocdev line with falling-edge events to pn532.IRQ.
type irqLine struct {
	l  *gpiocdev.Line
	ch chan struct{}
}

func requestIRQ(s string) (*irqLine, error) {
	chip, off, err := resolve(s)
	if err != nil {
		return nil, err
	}
	i := &irqLine{ch: make(chan struct{}, 1)}
	i.l, err = gpiocdev.RequestLine(chip, off, gpiocdev.AsInput, gpiocdev.WithFallingEdge,
		gpiocdev.WithEventHandler(i.edge), gpiocdev.WithConsumer("pn532-irq"))
	if err != nil {
		return nil, fmt.Errorf("pn532hw: irq line %s: %w", s, err)
	}
	return i, nil
}

// edge runs on gpiocdev's watcher goroutine: hand off, never block.
func (i *irqLine) edge(gpiocdev.LineEvent) {
	select {
	case i.ch <- struct{}{}:
	default:
	}
}

func (i *irqLine) Value() (int, error)      { return i.l.Value() }
func (i *irqLine) Falling() <-chan struct{} { return i.ch }
func (i *irqLine) Close() error             { return i.l.Close() }

var (
	_ pn532.IRQ   = (*irqLine)(nil)
	_ pn532.Reset = (*gpiocdev.Line)(nil)
)
