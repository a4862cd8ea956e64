package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/oled"
	"github.com/uitpas/tap-kiosk/display/oled/oledtest"
	"github.com/uitpas/tap-kiosk/display/render"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
)

// testConfig is a kiosk with the simulated reader, in dir, on broker.
func testConfig(tb testing.TB, dir, broker string) provisioning.Config {
	tb.Helper()
	c := provisioning.Default()
	c.DeviceID, c.StateDir, c.Path = "kiosk-unit-01", filepath.Join(dir, "state"), "test"
	c.Event.ID, c.Event.Title = "evt-unit", "Leesclub"
	c.Tap.Debounce = 0
	c.Control.Socket = filepath.Join(dir, "control.sock")
	c.MQTT.Broker, c.MQTT.AllowInsecure = broker, true
	c.Display.SpaarcodeEvery = -1 // no idle ⇄ spaarcode alternation
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// runKiosk starts k and stops it at cleanup.
func runKiosk(tb testing.TB, cfg provisioning.Config, o Opts) *Kiosk {
	tb.Helper()
	k, stop := startKiosk(tb, cfg, o)
	tb.Cleanup(stop)
	return k
}

// startKiosk starts k; stop stops it (once) and checks Run's error.
func startKiosk(tb testing.TB, cfg provisioning.Config, o Opts) (*Kiosk, func()) {
	tb.Helper()
	ready := make(chan struct{})
	o.OnReady = func() { close(ready) }
	k, err := New(cfg, o)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("Run: %v", err)
			}
		})
	}
	select {
	case <-ready:
	case err := <-done:
		tb.Fatalf("Run: %v", err)
	}
	return k, stop
}

func tap(tb testing.TB, sock, chip string) TapReply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := control.Call(ctx, sock, control.Request{Op: "tap", ChipNumber: chip})
	if err != nil {
		tb.Fatal(err)
	}
	var r TapReply
	if err := json.Unmarshal(line, &r); err != nil || !r.OK {
		tb.Fatalf("tap reply %s: %v", line, err)
	}
	return r
}

// TestTapDrivesSSD1306: kioskd's assembly with an SSD1306 on a simulated I²C
// bus; after a tap the panel's RAM holds exactly the rendered saved screen.
func TestTapDrivesSSD1306(t *testing.T) {
	dir := t.TempDir()
	broker := testbroker.Start(t)
	cfg := testConfig(t, dir, broker.URL())
	panel := &oledtest.Panel{}
	dev, err := oled.NewI2C(panel, 0x3C, nil)
	if err != nil {
		t.Fatal(err)
	}
	runKiosk(t, cfg, Opts{Display: dev})
	r, err := render.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	idle := r.Render(display.Screen{Kind: display.Idle, Lang: "nl", EventTitle: "Leesclub"}).Pix
	waitFor(t, "idle on the panel", func() bool { return panel.Shows(idle) })
	if reply := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6"); reply.Outcome != "saved" {
		t.Fatalf("tap: %+v", reply)
	}
	saved := r.Render(display.Screen{Kind: display.Saved, Lang: "nl", EventTitle: "Leesclub", Points: 1}).Pix
	waitFor(t, "saved on the panel", func() bool { return panel.Shows(saved) })
	if err := dev.Err(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	waitfor.Cond(tb, what, cond)
}

// BenchmarkTap measures a tap through the control socket with no display and
// with an SSD1306 whose simulated I²C bus runs at 400 kHz: the tap path must
// not wait for the bus, so the two are alike.
func BenchmarkTap(b *testing.B) {
	broker := testbroker.Start(b)
	for _, withOLED := range []bool{false, true} {
		name := "display=none"
		if withOLED {
			name = "display=ssd1306@400kHz"
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir(), broker.URL())
			var o Opts
			if withOLED {
				panel := &oledtest.Panel{}
				panel.SetBusHz(400_000)
				dev, err := oled.NewI2C(panel, 0x3C, nil)
				if err != nil {
					b.Fatal(err)
				}
				o.Display = dev
			}
			runKiosk(b, cfg, o)
			lat := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				t0 := time.Now()
				tap(b, cfg.Control.Socket, fmt.Sprintf("04CAFE%08X", i))
				lat = append(lat, time.Since(t0))
				i++
			}
			l := queue.Summarise(lat)
			b.ReportMetric(float64(l.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(l.P99.Microseconds()), "p99-µs")
		})
	}
}

// TestEmulatedReaderSameCardAgain: the same card put on the emulated PN532
// again and again is a new tap each time (the real driver's presence logic
// must see it leave the field in between), never a tap that hangs.
func TestEmulatedReaderSameCardAgain(t *testing.T) {
	dir := t.TempDir()
	broker := testbroker.Start(t)
	cfg := testConfig(t, dir, broker.URL())
	cfg.Reader.Driver = "pn532-emulated"
	runKiosk(t, cfg, Opts{})
	want := "saved"
	for i := range 8 {
		if r := tap(t, cfg.Control.Socket, "042F51B2712380"); r.Outcome != want {
			t.Fatalf("tap %d: %+v, want %s", i, r, want)
		}
		want = "already-saved"
	}
}
