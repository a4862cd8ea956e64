package kiosk

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/blockterm"
	"github.com/uitpas/tap-kiosk/display/oled"
	"github.com/uitpas/tap-kiosk/display/png"
	"github.com/uitpas/tap-kiosk/display/signal"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532hw"
)

// openHardwareReader opens the PN532: on the SPI bus, or the real driver
// over the PN532 emulator (the demo's and tests' reader), whose field takes
// cards from the control socket.
func (k *Kiosk) openHardwareReader() error {
	r := k.cfg.Reader
	log := k.log.With("part", "reader")
	switch r.Driver {
	case "pn532-spi":
		dev, err := pn532hw.Open(pn532hw.Config{SPIDev: r.SPIDev, SpeedHz: r.SpeedHz, IRQ: r.IRQ, Reset: r.Reset}, k.o.Clock, log)
		if err != nil {
			return fmt.Errorf("kiosk: reader: %w", err)
		}
		k.rd = dev
		k.halt = append(k.halt, dev.Halt)
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
// rotator, and the buzzer and LED when wired.
func (k *Kiosk) openDisplay() error {
	d := k.cfg.Display
	k.ind = display.None{}
	if d.Buzzer != "" || d.LED != "" {
		chip, buzzer, led, err := indicatorLines(d.Buzzer, d.LED)
		if err != nil {
			return err
		}
		ind, err := signal.OpenHardware(chip, buzzer, led)
		if err != nil {
			return fmt.Errorf("kiosk: display.buzzer/led: %w", err)
		}
		k.ind = ind
		k.halt = append(k.halt, ind.Halt)
		k.health = append(k.health, ind.Err)
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
			return fmt.Errorf("kiosk: display.dir: %w", err)
		}
		out = p
	case d.Driver == "ssd1306":
		night, err := parseNight(d.Night)
		if err != nil {
			return err
		}
		o := oled.DefaultOpts
		o.Width, o.Height, o.Rotated, o.Night, o.Clock, o.Logger = d.Width, d.Height, d.Rotated, night, k.o.Clock, k.log.With("part", "oled")
		dev, err := oled.OpenHardware(oled.HWConfig{Bus: d.Bus, I2CBus: d.I2CBus, I2CAddr: uint16(d.I2CAddr),
			SPIPort: d.SPIDev, DC: d.DC, Opts: o})
		if err != nil {
			return fmt.Errorf("kiosk: display: %w", err)
		}
		out = dev
	default:
		return fmt.Errorf("kiosk: display.driver %q unknown", d.Driver)
	}
	if h, ok := out.(interface{ Err() error }); ok {
		k.health = append(k.health, h.Err)
	}
	k.disp = display.NewRotator(out, k.o.Clock, d.SpaarcodeEvery)
	return nil
}

// indicatorLines splits "gpiochip0:18"-style line names; both lines must be
// on one chip.
func indicatorLines(buzzer, led string) (chip, b, l string, err error) {
	split := func(key, v string) (string, string, error) {
		if v == "" {
			return "", "", nil
		}
		c, line, ok := strings.Cut(v, ":")
		if !ok || c == "" || line == "" {
			return "", "", fmt.Errorf("kiosk: display.%s %q: want chip:line, e.g. gpiochip0:18", key, v)
		}
		return c, line, nil
	}
	cb, b, err := split("buzzer", buzzer)
	if err != nil {
		return "", "", "", err
	}
	cl, l, err := split("led", led)
	if err != nil {
		return "", "", "", err
	}
	if cb != "" && cl != "" && cb != cl {
		return "", "", "", fmt.Errorf("kiosk: display.buzzer and display.led must be on one GPIO chip (%s, %s)", cb, cl)
	}
	chip = cb
	if chip == "" {
		chip = cl
	}
	return chip, b, l, nil
}

// parseNight reads "22:00-07:00" into the panel's night window.
func parseNight(s string) (oled.Night, error) {
	if s == "" {
		return oled.Night{}, nil
	}
	bad := fmt.Errorf("kiosk: display.night %q: want HH:MM-HH:MM, e.g. 22:00-07:00", s)
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return oled.Night{}, bad
	}
	parse := func(hm string) (time.Duration, bool) {
		h, m, ok := strings.Cut(strings.TrimSpace(hm), ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return 0, false
		}
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, true
	}
	f, ok1 := parse(from)
	t, ok2 := parse(to)
	if !ok1 || !ok2 {
		return oled.Night{}, bad
	}
	return oled.Night{From: f, To: t, Contrast: 0x10}, nil
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
