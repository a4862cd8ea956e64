// Package oled shows the kiosk's screens on an SSD1306 OLED over I²C or SPI,
// through periph's ssd1306 driver.
//
// Show never waits for the bus: it hands the screen to a goroutine that
// renders and draws it, and a screen not drawn yet is replaced by a later one.
// The driver sends only the pages and columns that changed. After a bus error
// the goroutine re-initialises the panel (it may have lost power) and
// redraws in full, retrying on a timer; Err reports the last error for the
// kiosk's health report. An optional night window lowers the contrast.
package oled

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/devices/v3/ssd1306"
	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/internal/mailbox"
	"github.com/uitpas/tap-kiosk/display/render"
)

// Night is a daily window of lower contrast, in local time. From == To
// disables it; From > To spans midnight (22:00 to 07:00).
type Night struct {
	From, To time.Duration // since midnight
	Contrast byte
}

// Opts configures the panel.
type Opts struct {
	Width, Height int // 128×64, or 128×32
	// Rotated is for a panel mounted upside down.
	Rotated bool
	// Sequential is the COM pin layout of some 128×32 modules: try it when
	// every other line is missing.
	Sequential bool
	// Contrast by day; the SSD1306's own default is 0x7F, periph's 0xFF.
	Contrast byte
	Night    Night
	// Retry is the wait before re-initialising the panel after a bus error.
	Retry  time.Duration
	Clock  clock.Clock
	Logger *slog.Logger
}

// DefaultOpts is a 128×64 panel at full contrast, no night window.
var DefaultOpts = Opts{Width: 128, Height: 64, Contrast: 0xFF, Retry: 5 * time.Second}

// initContrast is the contrast periph's ssd1306 initialisation sets.
const initContrast = 0xFF

// ErrHalted is returned by Err once Halt has run.
var ErrHalted = errors.New("oled: halted")

// Display is an SSD1306 showing kiosk screens.
type Display struct {
	o      Opts
	name   string
	open   func() (*ssd1306.Dev, error) // (re)initialises the panel
	closer io.Closer                    // the bus or port, when OpenHardware opened it
	r      *render.Renderer
	box    *mailbox.Box[display.Screen]
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu  sync.Mutex
	err error

	// Owned by the goroutine.
	dev      *ssd1306.Dev
	img      *image1bit.VerticalLSB
	cur      display.Screen
	have     bool
	contrast int // last contrast sent; -1: unknown (after a failed send)
}

// NewI2C returns a display on bus at addr (0x3C or 0x3D). The panel is
// initialised before it returns.
func NewI2C(bus i2c.Bus, addr uint16, o *Opts) (*Display, error) {
	if addr == 0 {
		addr = 0x3C
	}
	ab := &addrBus{Bus: bus, addr: addr}
	var so ssd1306.Opts
	return newDisplay(fmt.Sprintf("ssd1306(i2c %s@%#x)", bus, addr), o, &so, func() (*ssd1306.Dev, error) {
		return ssd1306.NewI2C(ab, &so)
	})
}

// NewSPI returns a display on p with dc as the data/command line (4-wire
// SPI). The panel is initialised before it returns.
func NewSPI(p spi.Port, dc gpio.PinOut, o *Opts) (*Display, error) {
	if dc == nil {
		return nil, errors.New("oled: 3-wire SPI is not supported: give the D/C line")
	}
	op := &oncePort{Port: p}
	var so ssd1306.Opts
	return newDisplay(fmt.Sprintf("ssd1306(spi %s, dc %s)", p, dc), o, &so, func() (*ssd1306.Dev, error) {
		return ssd1306.NewSPI(op, dc, &so)
	})
}

func newDisplay(name string, o *Opts, so *ssd1306.Opts, open func() (*ssd1306.Dev, error)) (*Display, error) {
	opts := DefaultOpts
	if o != nil {
		opts = *o
	}
	if opts.Width == 0 || opts.Height == 0 {
		opts.Width, opts.Height = DefaultOpts.Width, DefaultOpts.Height
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultOpts.Retry
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	*so = ssd1306.Opts{W: opts.Width, H: opts.Height, Sequential: opts.Sequential,
		MirrorVertical: opts.Rotated, MirrorHorizontal: opts.Rotated}
	r, err := render.New(&render.Opts{Width: opts.Width, Height: opts.Height})
	if err != nil {
		return nil, fmt.Errorf("oled: %w", err)
	}
	d := &Display{
		o: opts, name: name, open: open, r: r,
		box: mailbox.New[display.Screen](), done: make(chan struct{}),
		img: image1bit.NewVerticalLSB(r.Bounds()), contrast: initContrast,
	}
	if d.dev, err = open(); err != nil {
		return nil, fmt.Errorf("oled: init: %w", err)
	}
	if err := d.setContrast(); err != nil {
		return nil, fmt.Errorf("oled: contrast: %w", err)
	}
	d.wg.Add(1)
	go d.run()
	return d, nil
}

// Show hands s to the drawing goroutine and returns at once.
func (d *Display) Show(s display.Screen) { d.box.Put(s) }

// Err is the last bus error, nil when the last draw went through.
func (d *Display) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *Display) String() string { return d.name }

// Halt stops drawing and turns the panel off (its RAM keeps the picture, but
// nothing is lit). It closes the bus when OpenHardware opened it.
func (d *Display) Halt() error {
	var err error
	d.once.Do(func() {
		close(d.done)
		d.wg.Wait()
		if d.dev != nil {
			if e := d.dev.Halt(); e != nil {
				err = fmt.Errorf("oled: halt: %w", e)
			}
		}
		if d.closer != nil {
			if e := d.closer.Close(); e != nil && err == nil {
				err = fmt.Errorf("oled: close: %w", e)
			}
		}
		d.mu.Lock()
		d.err = ErrHalted
		d.mu.Unlock()
	})
	return err
}

func (d *Display) setErr(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

func (d *Display) run() {
	defer d.wg.Done()
	var retry clock.Timer
	night := d.o.Clock.NewTimer(d.untilBoundary())
	defer night.Stop()
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C()
		}
		select {
		case <-d.done:
			return
		case <-d.box.C():
			s, ok := d.box.Take()
			if !ok {
				continue
			}
			d.cur, d.have = s, true
		case <-retryC:
			retry = nil
		case <-night.C():
			night.Reset(d.untilBoundary())
		}
		if err := d.paint(); err != nil {
			d.setErr(err)
			d.o.Logger.Warn("oled: draw failed; will re-initialise", "display", d.name, "err", err, "retry", d.o.Retry)
			d.dev = nil // re-initialise: the panel may have lost power
			if retry == nil {
				retry = d.o.Clock.NewTimer(d.o.Retry)
			}
			continue
		}
		if retry != nil {
			retry.Stop()
			retry = nil
		}
		d.setErr(nil)
	}
}

// paint brings the panel up to date: initialised, contrast for the hour,
// current screen. The driver sends only what changed since its last frame;
// after a re-initialisation it sends the whole frame.
func (d *Display) paint() error {
	if d.dev == nil {
		dev, err := d.open()
		if err != nil {
			return fmt.Errorf("oled: init: %w", err)
		}
		d.dev, d.contrast = dev, initContrast
		d.o.Logger.Info("oled: panel initialised", "display", d.name)
	}
	if err := d.setContrast(); err != nil {
		return fmt.Errorf("oled: contrast: %w", err)
	}
	if !d.have {
		return nil
	}
	d.r.Draw(d.img, d.cur)
	if _, err := d.dev.Write(d.img.Pix); err != nil {
		return fmt.Errorf("oled: write: %w", err)
	}
	return nil
}

// setContrast sends the contrast for the current time if it changed.
func (d *Display) setContrast() error {
	want := int(d.o.Contrast)
	if d.isNight(d.o.Clock.Now()) {
		want = int(d.o.Night.Contrast)
	}
	if want == d.contrast {
		return nil
	}
	if err := d.dev.SetContrast(byte(want)); err != nil {
		d.contrast = -1
		return err
	}
	d.contrast = want
	return nil
}

func sinceMidnight(t time.Time) time.Duration {
	y, m, dd := t.Date()
	return t.Sub(time.Date(y, m, dd, 0, 0, 0, 0, t.Location()))
}

func (d *Display) isNight(t time.Time) bool {
	n := d.o.Night
	if n.From == n.To {
		return false
	}
	s := sinceMidnight(t)
	if n.From < n.To {
		return s >= n.From && s < n.To
	}
	return s >= n.From || s < n.To
}

// untilBoundary is the wait until the night window next opens or closes (an
// hour when there is none, so that a stepped clock is noticed).
func (d *Display) untilBoundary() time.Duration {
	n := d.o.Night
	if n.From == n.To {
		return time.Hour
	}
	s := sinceMidnight(d.o.Clock.Now())
	best := 24 * time.Hour
	for _, b := range []time.Duration{n.From, n.To} {
		w := (b - s + 24*time.Hour) % (24 * time.Hour)
		if w == 0 {
			w = 24 * time.Hour
		}
		best = min(best, w)
	}
	return min(best, time.Hour)
}

// addrBus puts the configured address on every transaction: periph's
// ssd1306.NewI2C always talks to 0x3C.
type addrBus struct {
	i2c.Bus
	addr uint16
}

func (b *addrBus) Tx(_ uint16, w, r []byte) error { return b.Bus.Tx(b.addr, w, r) }

// oncePort connects the SPI port once and hands the same connection to every
// re-initialisation: a port may be connected only once.
type oncePort struct {
	spi.Port
	c spi.Conn
}

func (p *oncePort) Connect(f physic.Frequency, mode spi.Mode, bits int) (spi.Conn, error) {
	if p.c != nil {
		return p.c, nil
	}
	c, err := p.Port.Connect(f, mode, bits)
	if err != nil {
		return nil, err
	}
	p.c = c
	return c, nil
}

var (
	_ display.Display = (*Display)(nil)
	_ conn.Resource   = (*Display)(nil)
)
