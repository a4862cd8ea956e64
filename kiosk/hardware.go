package kiosk

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/blockterm"
	"github.com/uitpas/tap-kiosk/display/oled"
	"github.com/uitpas/tap-kiosk/display/png"
	"github.com/uitpas/tap-kiosk/display/signal"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532hw"
)

// openHardwareReader sets up the PN532: on the SPI bus, or the real driver
// over the PN532 emulator (the demo's and tests' reader), whose field takes
// cards from the control socket. The SPI reader is opened in its Run and
// reopened with backoff while it cannot be: a missing /dev/spidev0.0 (SPI
// not enabled) is a fault on the screen and in status, not a dead kioskd.
func (k *Kiosk) openHardwareReader() error {
	r := k.cfg.Reader
	log := k.log.With("part", "reader")
	switch r.Driver {
	case "pn532-spi":
		k.rd = &retryReader{name: "pn532-spi " + r.SPIDev, clk: k.o.Clock, log: log,
			open: func() (openedReader, error) {
				dev, err := pn532hw.Open(pn532hw.Config{SPIDev: r.SPIDev, SpeedHz: r.SpeedHz, IRQ: r.IRQ, Reset: r.Reset}, k.o.Clock, log)
				if err != nil {
					return openedReader{}, fmt.Errorf("kiosk: reader %s: %w", r.SPIDev, err)
				}
				return openedReader{r: dev, halt: dev.Halt}, nil
			}}
		return nil
	case "pn532-emulated":
		em, err := pn532emu.NewReader(k.o.Clock, log)
		if err != nil {
			return fmt.Errorf("kiosk: reader: %w", err)
		}
		k.rd, k.pres = em, em
		k.halt = append(k.halt, em.Halt)
		return nil
	}
	return fmt.Errorf("kiosk: reader.driver %q unknown", r.Driver)
}

// openDisplay opens the configured output behind the idle ⇄ spaarcode
// rotator, and the buzzer and LED when wired. Hardware that does not open
// (no I2C bus, a line taken) is retried in the background; the kiosk runs
// without it meanwhile and reports the fault.
func (k *Kiosk) openDisplay() error {
	d := k.cfg.Display
	k.ind = display.None{}
	if k.o.Indicator != nil {
		k.ind = k.o.Indicator
	} else if d.Buzzer != "" || d.LED != "" {
		ind := retryIndicator{newSlot[indicator]("buzzer/LED", k.o.Clock, k.log.With("part", "indicator"),
			func() (indicator, error) {
				ind, err := signal.OpenHardware(d.Buzzer, d.LED)
				if err != nil {
					return nil, fmt.Errorf("kiosk: display.buzzer/led: %w", err)
				}
				return ind, nil
			}, nil)}
		k.ind = ind
		k.halt = append(k.halt, ind.Halt)
		k.indHealth = ind.Err
	}
	var out display.Display
	switch {
	case k.o.Display != nil:
		out = k.o.Display
	case d.Driver == "none":
		k.disp = display.None{}
		return nil
	case d.Driver == "terminal":
		// A terminal narrower than the panel's width gets quadrant blocks.
		t, err := blockterm.New(k.o.Stdout, &blockterm.Opts{Width: d.Width, Height: d.Height,
			Quadrants: terminalColumns(k.o.Stdout) < d.Width+4})
		if err != nil {
			return fmt.Errorf("kiosk: display: %w", err)
		}
		out = t
	case d.Driver == "png":
		p, err := png.New(d.Dir, &png.Opts{Width: d.Width, Height: d.Height, Scale: 4, Logger: k.log})
		if err != nil {
			return fmt.Errorf("kiosk: display.dir %s: %w", d.Dir, err)
		}
		out = p
	case d.Driver == "ssd1306":
		from, to, err := provisioning.ParseNight(d.Night)
		if err != nil {
			return fmt.Errorf("kiosk: %w", err)
		}
		o := oled.DefaultOpts
		o.Width, o.Height, o.Rotated, o.Clock, o.Logger = d.Width, d.Height, d.Rotated, k.o.Clock, k.log.With("part", "oled")
		if from != to {
			o.Night = oled.Night{From: from, To: to, Contrast: 0x10}
		}
		where := d.I2CBus
		if d.Bus == "spi" {
			where = d.SPIDev
		}
		out = newRetryDisplay("ssd1306 "+where, k.o.Clock, k.log, func() (display.Display, error) {
			dev, err := oled.OpenHardware(oled.HWConfig{Bus: d.Bus, I2CBus: d.I2CBus, I2CAddr: uint16(d.I2CAddr),
				SPIPort: d.SPIDev, DC: d.DC, Opts: o})
			if err != nil {
				return nil, fmt.Errorf("kiosk: display %s: %w", where, err)
			}
			return dev, nil
		})
	default:
		return fmt.Errorf("kiosk: display.driver %q unknown", d.Driver)
	}
	if h, ok := out.(interface{ Err() error }); ok {
		k.health = append(k.health, h.Err)
	}
	k.disp = display.NewRotator(out, k.o.Clock, d.SpaarcodeEvery)
	return nil
}

// terminalColumns is the width of the terminal w writes to, or 80 when w is
// no terminal.
func terminalColumns(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 80
}
