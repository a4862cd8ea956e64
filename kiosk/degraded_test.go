package kiosk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/reader"
)

func status(tb testing.TB, sock string) StatusReply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := control.Call(ctx, sock, control.Request{Op: "status"})
	if err != nil {
		tb.Fatal(err)
	}
	var r StatusReply
	if err := json.Unmarshal(line, &r); err != nil || !r.OK {
		tb.Fatalf("status %s: %v", line, err)
	}
	return r
}

// Hardware that is missing at start (no SPI device: SPI not enabled; no
// GPIO chip for the buzzer; no I2C bus for the panel) does not stop the
// kiosk: it runs, shows the desk, and says what is wrong.
func TestMissingHardwareRunsDegraded(t *testing.T) {
	dir := t.TempDir()
	broker := testbroker.Start(t)
	cfg := testConfig(t, dir, broker.URL())
	cfg.Reader.Driver, cfg.Reader.SPIDev = "pn532-spi", filepath.Join(dir, "no-spidev0.0")
	cfg.Display.Buzzer, cfg.Display.LED = "GPIO-not-here-18", "gpiochip99:23"
	screens := &screenLog{}
	k := runKiosk(t, cfg, Opts{Display: screens})
	waitFor(t, "the reader fault in status", func() bool { return status(t, cfg.Control.Socket).Reader == "fault" })
	st := status(t, cfg.Control.Socket)
	if st.Indicator != "fault" || st.Storage != "ok" || st.Display != "ok" {
		t.Errorf("status %+v: want indicator fault, display and storage ok", st)
	}
	if !strings.Contains(strings.Join(st.Warnings, "\n"), "no-spidev0.0") {
		t.Errorf("warnings %q do not name the SPI device", st.Warnings)
	}
	waitFor(t, "the fault screen", func() bool { return screens.last().Kind == display.Fault })
	if s := k.Core().Status(); s.Reader != "fault" || s.Indicator != "fault" {
		t.Errorf("retained Status %+v: want reader and indicator fault", s)
	}
}

// The SSD1306 on a bus that does not exist: the kiosk runs without it and
// its display health says fault.
func TestMissingPanelRunsDegraded(t *testing.T) {
	dir := t.TempDir()
	broker := testbroker.Start(t)
	cfg := testConfig(t, dir, broker.URL())
	cfg.Display.Driver, cfg.Display.I2CBus = "ssd1306", filepath.Join(dir, "no-i2c-1")
	runKiosk(t, cfg, Opts{})
	st := status(t, cfg.Control.Socket)
	if st.Display != "fault" {
		t.Fatalf("status %+v: want display fault", st)
	}
	if r := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6"); r.Outcome != "saved" {
		t.Fatalf("a tap without a panel: %+v", r)
	}
	waitFor(t, "the subscriptions granted", func() bool { return status(t, cfg.Control.Socket).Subscribed })
}

// Startup errors of state end in an error that names what is wrong, never
// a panic, and leave nothing open.
func TestStateDirErrorsNameTheDirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	cases := map[string]string{
		"a file":       file,
		"under a file": filepath.Join(file, "state"),
		"read-only":    readOnlyDir(t),
	}
	for name, stateDir := range cases {
		cfg := testConfig(t, t.TempDir(), "tcp://127.0.0.1:1")
		cfg.StateDir = stateDir
		k, err := New(cfg, Opts{})
		if err == nil {
			k.release()
			t.Errorf("%s: New succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), "state_dir "+stateDir) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q does not name state_dir %s in one line", name, err, stateDir)
		}
	}
}

// readOnlyDir is a directory this process cannot write: a read-only tmpfs
// when root (root writes through mode bits), mode 0500 otherwise.
func readOnlyDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(d, 0o700)
	if os.Geteuid() != 0 {
		os.Chmod(d, 0o500)
		t.Cleanup(func() { os.Chmod(d, 0o700) })
		return d
	}
	if err := mountTmpfsRO(d); err != nil {
		t.Skipf("cannot mount a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() { unmount(d) })
	return d
}

// retryReader: a reader that cannot be opened is a fault; once it opens
// the fault clears and its taps flow.
func TestRetryReaderOpensLater(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	sim := reader.NewSim(clk)
	fails := 2
	r := &retryReader{name: "test", clk: clk, log: discard(),
		open: func() (openedReader, error) {
			if fails > 0 {
				fails--
				return openedReader{}, errors.New("no /dev/spidev0.0")
			}
			return openedReader{r: sim, halt: func() error { return nil }}, nil
		}}
	events := make(chan reader.Event, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, events) }()
	ev := <-events
	if ev.Health == nil || ev.Health.State != reader.Fault {
		t.Fatalf("first event %+v, want a fault", ev)
	}
	waitFor(t, "the second open attempt", func() bool {
		clk.Advance(reopenDelay(2))
		select {
		case ev = <-events:
			return true
		default:
			return false
		}
	})
	if ev.Health == nil || ev.Health.State != reader.OK {
		t.Fatalf("after opening %+v, want OK", ev)
	}
	if !strings.Contains(r.String(), "sim") {
		t.Errorf("String %q once open", r.String())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestReopenDelayGrowsAndCaps(t *testing.T) {
	if reopenDelay(1) != time.Second || reopenDelay(2) != 2*time.Second || reopenDelay(30) != reopenMax {
		t.Fatal(reopenDelay(1), reopenDelay(2), reopenDelay(30))
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
