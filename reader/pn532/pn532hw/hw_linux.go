//go:build linux

package pn532hw

import (
	"fmt"

	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/warthog618/go-gpiocdev"
	"periph.io/x/conn/v3/spi/spireg"
	"periph.io/x/host/v3"
)

// OpenParts initialises periph, opens the SPI port (not connected: the
// driver connects it once) and requests the GPIO lines.
func OpenParts(cfg Config) (Parts, error) {
	if _, err := host.Init(); err != nil {
		return Parts{}, fmt.Errorf("pn532hw: periph: %w", err)
	}
	if cfg.SPIDev == "" {
		cfg.SPIDev = "/dev/spidev0.0"
	}
	p := Parts{Opts: cfg.opts()}
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
		chip, off, err := resolve(cfg.Reset, cdevFinder{})
		if err != nil {
			p.Close()
			return Parts{}, err
		}
		// High: the chip runs. It is driven low only to reset it.
		l, err := gpiocdev.RequestLine(chip, off, gpiocdev.AsOutput(1), gpiocdev.WithConsumer("pn532-rstpdn"))
		if err != nil {
			p.Close()
			return Parts{}, fmt.Errorf("pn532hw: reset line %s (%s:%d): %w", cfg.Reset, chip, off, err)
		}
		p.Reset = l
	}
	return p, nil
}

// cdevFinder looks lines up through the GPIO character devices.
type cdevFinder struct{}

func (cdevFinder) FindLine(name string) (string, int, error) {
	chip, off, err := gpiocdev.FindLine(name)
	if err != nil {
		return "", 0, fmt.Errorf("no line named %s on any GPIO chip: %w", name, err)
	}
	return chip, off, nil
}

func (cdevFinder) FindLineOn(chip, name string) (int, error) {
	c, err := gpiocdev.NewChip(chip)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	off, err := c.FindLine(name)
	if err != nil {
		return 0, fmt.Errorf("no line named %s on %s: %w", name, chip, err)
	}
	return off, nil
}

// irqLine adapts a go-gpiocdev line with falling-edge events to pn532.IRQ.
type irqLine struct {
	l  *gpiocdev.Line
	ch chan struct{}
}

func requestIRQ(s string) (*irqLine, error) {
	chip, off, err := resolve(s, cdevFinder{})
	if err != nil {
		return nil, err
	}
	i := &irqLine{ch: make(chan struct{}, 1)}
	i.l, err = gpiocdev.RequestLine(chip, off, irqOptions(i.edge)...)
	if err != nil {
		return nil, fmt.Errorf("pn532hw: irq line %s (%s:%d): %w", s, chip, off, err)
	}
	return i, nil
}

// irqOptions request P70_IRQ: an input with falling-edge events and the
// internal pull-up. The pull-up matters: GPIO25 comes out of reset with
// its pull-down on (BCM283x: GPIO9–27), so an unwired or floating line
// would read low, "ready", for ever; pulled up it reads high, never
// asserts, and the driver finds that out and polls the status byte.
func irqOptions(h gpiocdev.EventHandler) []gpiocdev.LineReqOption {
	return []gpiocdev.LineReqOption{gpiocdev.AsInput, gpiocdev.WithPullUp, gpiocdev.WithFallingEdge,
		gpiocdev.WithEventHandler(h), gpiocdev.WithConsumer("pn532-irq")}
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
