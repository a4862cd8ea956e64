package oled

import (
	"bytes"
	"errors"
	"github.com/uitpas/tap-kiosk/display/oled/oledtest"
	"testing"
	"time"

	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/spi/spitest"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/render"
)

// initCmd is periph's SSD1306 initialisation for a 128×64 panel, as the
// datasheet's recommended flow (page 64).
var initCmd = []byte{
	0xAE,       // display off
	0xD3, 0x00, // display offset 0
	0x40,       // start line 0
	0xA1,       // segment remap
	0xC8,       // COM scan direction: remapped
	0xDA, 0x12, // COM pins: alternative
	0x81, 0xFF, // contrast
	0xA4,       // display RAM
	0xA6,       // normal, not inverted
	0xD5, 0xF0, // oscillator
	0x8D, 0x14, // charge pump on
	0xD9, 0xF1, // pre-charge
	0xDB, 0x40, // VCOMH
	0x2E,     // scroll off
	0xA8, 63, // multiplex
	0x20, 0x00, // horizontal addressing
	0x21, 0, 127, // columns
	0x22, 0, 7, // pages
	0xAF, // display on
}

var (
	idle    = display.Screen{Kind: display.Idle, EventTitle: "Yoga in ’t park"}
	idle2   = display.Screen{Kind: display.Idle, EventTitle: "Yoga in de tuin"}
	saved   = display.Screen{Kind: display.Saved, Points: 1, HasTotal: true, Total: 23}
	fault   = display.Screen{Kind: display.Fault}
	noon    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	render_ = func(t testing.TB, s display.Screen) []byte {
		t.Helper()
		r, err := render.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Render(s).Pix
	}
)

func i2cCmd(b ...byte) []byte { return append([]byte{0x00}, b...) }
func i2cData(b []byte) []byte { return append([]byte{0x40}, b...) }
func pageCmd(page, col int) []byte {
	return []byte{0xB0 | byte(page), byte(col & 0x0F), 0x10 | byte(col>>4)}
}

// updateOps are the transactions the driver sends to turn panel RAM from
// into to: the pages and columns of the box that changed.
func updateOps(addr uint16, from, to []byte) []i2ctest.IO {
	firstP, lastP, firstC, lastC := 8, -1, 128, -1
	for i := range to {
		if from != nil && from[i] == to[i] {
			continue
		}
		p, c := i/128, i%128
		firstP, lastP = min(firstP, p), max(lastP, p)
		firstC, lastC = min(firstC, c), max(lastC, c)
	}
	if from == nil {
		firstP, lastP, firstC, lastC = 0, 7, 0, 127
	}
	var ops []i2ctest.IO
	for p := firstP; p <= lastP; p++ {
		ops = append(ops,
			i2ctest.IO{Addr: addr, W: i2cCmd(pageCmd(p, firstC)...)},
			i2ctest.IO{Addr: addr, W: i2cData(to[p*128+firstC : p*128+lastC+1])})
	}
	return ops
}

// waitCount waits for the playback to reach n transactions.
func waitCount(t *testing.T, bus *i2ctest.Playback, n int) {
	t.Helper()
	waitFor(t, func() bool {
		bus.Lock()
		defer bus.Unlock()
		return bus.Count >= n
	}, "playback at %d transactions", n)
}

func waitFor(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+msg, args...)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestI2CBytes replays the exact bytes: init at the configured address, a
// full first frame, nothing for an unchanged screen, and only the changed
// box for the next.
func TestI2CBytes(t *testing.T) {
	const addr = 0x3D
	a, b := render_(t, idle), render_(t, idle2)
	ops := []i2ctest.IO{{Addr: addr, W: i2cCmd(initCmd...)}}
	ops = append(ops, updateOps(addr, nil, a)...)
	afterFirst := len(ops)
	partial := updateOps(addr, a, b)
	ops = append(ops, partial...)
	if len(partial) >= 16 {
		t.Fatalf("idle to idle2 changes %d transactions; the test wants a partial update", len(partial))
	}
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	o := DefaultOpts
	o.Clock = clock.NewFake(noon)
	d, err := NewI2C(bus, addr, &o)
	if err != nil {
		t.Fatal(err)
	}
	d.Show(idle)
	waitCount(t, bus, afterFirst)
	d.Show(idle) // unchanged: no traffic
	d.Show(idle2)
	waitCount(t, bus, len(ops))
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	// Halt sends display off.
	bus.Lock()
	bus.Ops = append(bus.Ops, i2ctest.IO{Addr: addr, W: i2cCmd(0xAE)})
	bus.Unlock()
	if err := d.Halt(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(d.Err(), ErrHalted) {
		t.Errorf("Err after Halt = %v", d.Err())
	}
}

func TestSPIBytes(t *testing.T) {
	a := render_(t, fault)
	ops := []conntest.IO{{W: initCmd}}
	for p := range 8 {
		ops = append(ops, conntest.IO{W: pageCmd(p, 0)}, conntest.IO{W: a[p*128 : (p+1)*128]})
	}
	port := &spitest.Playback{Playback: conntest.Playback{Ops: ops, DontPanic: true}}
	dc := &gpiotest.Pin{N: "DC"}
	o := DefaultOpts
	o.Clock = clock.NewFake(noon)
	d, err := NewSPI(port, dc, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Halt()
	d.Show(fault)
	waitFor(t, func() bool {
		port.Lock()
		defer port.Unlock()
		return port.Count == len(ops)
	}, "SPI frame")
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	dc.Lock()
	defer dc.Unlock()
	if dc.L != gpio.High {
		t.Error("D/C low after a data write")
	}
}

// TestShowNeverWaits: while the bus is stuck, Show returns at once, and the
// latest screen is the one the panel ends with.
func TestShowNeverWaits(t *testing.T) {
	p := &oledtest.Panel{}
	o := DefaultOpts
	o.Clock = clock.NewFake(noon)
	d, err := NewI2C(p, 0x3C, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Halt()
	stall := make(chan struct{})
	p.SetStall(stall)
	d.Show(idle) // the goroutine blocks in this frame's first data write
	returned := make(chan struct{})
	go func() {
		for i := range 100 {
			d.Show(display.Screen{Kind: display.Saved, Points: i})
		}
		d.Show(fault)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Show waited for the stalled bus")
	}
	close(stall)
	want := render_(t, fault)
	waitFor(t, func() bool { return p.Shows(want) }, "the fault screen on the panel")
}

// TestRecovers: after a bus error Err reports it; once the panel answers
// again it is re-initialised and the current screen drawn in full.
func TestRecovers(t *testing.T) {
	p := &oledtest.Panel{}
	clk := clock.NewFake(noon)
	o := DefaultOpts
	o.Clock = clk
	d, err := NewI2C(p, 0x3C, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Halt()
	d.Show(idle)
	waitFor(t, func() bool { return p.Shows(render_(t, idle)) }, "idle")
	p.SetFail(true)
	d.Show(saved)
	waitFor(t, func() bool { return d.Err() != nil }, "a bus error")
	// The panel lost power: its RAM is gone.
	p.ClearRAM()
	p.SetFail(false)
	waitFor(t, func() bool { return clk.Timers() == 2 }, "retry timer") // night check + retry
	clk.Advance(o.Retry)
	waitFor(t, func() bool { return p.Shows(render_(t, saved)) }, "saved after recovery")
	waitFor(t, func() bool { return d.Err() == nil }, "Err cleared")
	if n := p.Inits(); n != 2 {
		t.Errorf("%d initialisations, want 2", n)
	}
}

func TestNightContrast(t *testing.T) {
	p := &oledtest.Panel{}
	clk := clock.NewFake(time.Date(2025, 6, 1, 21, 59, 0, 0, time.UTC))
	o := DefaultOpts
	o.Clock = clk
	o.Contrast = 0xCF
	o.Night = Night{From: 22 * time.Hour, To: 7 * time.Hour, Contrast: 0x08}
	d, err := NewI2C(p, 0x3C, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Halt()
	contrasts := p.Contrasts
	// periph's init sets 0xFF; then the day contrast.
	if got := contrasts(); !bytes.Equal(got, []byte{0xFF, 0xCF}) {
		t.Fatalf("contrast at start %x", got)
	}
	waitFor(t, func() bool { return clk.Timers() == 1 }, "night timer")
	clk.Advance(time.Minute) // 22:00
	waitFor(t, func() bool { return len(contrasts()) == 3 }, "dimming")
	if got := contrasts()[2]; got != 0x08 {
		t.Fatalf("night contrast %#x", got)
	}
	for range 9 { // to 07:00, an hour at a time
		waitFor(t, func() bool { return clk.Timers() == 1 }, "night timer")
		clk.Advance(time.Hour)
	}
	waitFor(t, func() bool { return len(contrasts()) == 4 }, "brightening")
	if got := contrasts()[3]; got != 0xCF {
		t.Fatalf("day contrast %#x", got)
	}
}

func TestNewSPINeedsDC(t *testing.T) {
	if _, err := NewSPI(&spitest.Playback{}, nil, nil); err == nil {
		t.Fatal("no error for 3-wire SPI")
	}
}

func TestInitFailure(t *testing.T) {
	p := func() *oledtest.Panel { p := &oledtest.Panel{}; p.SetFail(true); return p }()
	if _, err := NewI2C(p, 0x3C, nil); err == nil {
		t.Fatal("no error when the panel does not answer")
	}
}

// busTime is the I²C time of n bytes at 400 kHz: 9 clocks a byte (8 bits
// and the ACK), start and stop ignored.
func busTime(n int) time.Duration {
	return time.Duration(n) * 9 * time.Second / 400_000
}

// BenchmarkI2CUpdate measures the bytes each update puts on the bus and the
// bus time they take at 400 kHz: for a full frame (idle and the QR code
// differ in every page and column), a tap (idle to saved) and a partial one
// (a new event title under the same headline).
func BenchmarkI2CUpdate(b *testing.B) {
	for _, bc := range []struct {
		name string
		a, z display.Screen
	}{
		{"full-frame", idle, display.Screen{Kind: display.Spaarcode, Code: "https://uitpas.be/spaar/3f9a1c7e-52b4-4d0a"}},
		{"tap", idle, saved},
		{"partial", idle, idle2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := &oledtest.Panel{}
			o := DefaultOpts
			o.Clock = clock.NewFake(noon)
			d, err := NewI2C(p, 0x3C, &o)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Halt()
			// Drive the drawing synchronously: the goroutine's paint is what
			// the bus sees.
			d.Halt()
			d.dev, _ = d.open()
			d.cur, d.have = bc.a, true
			if err := d.paint(); err != nil {
				b.Fatal(err)
			}
			p.ResetCounts()
			screens := []display.Screen{bc.z, bc.a}
			n := 0
			for b.Loop() {
				d.cur = screens[n%2]
				n++
				if err := d.paint(); err != nil {
					b.Fatal(err)
				}
			}
			nb, ntx := p.Counts()
			b.ReportMetric(float64(nb)/float64(n), "bus-bytes/op")
			b.ReportMetric(float64(ntx)/float64(n), "tx/op")
			b.ReportMetric(float64(busTime(nb))/float64(n)/float64(time.Millisecond), "bus-ms/op")
		})
	}
}
