package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/display/blockterm/termtest"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk/control"
)

// TestDemoKeepsTapCommandOnScreen runs the demo on an 80×24 terminal, as
// `make demo` in a small window: the kiosk's screen is redrawn in place
// (nothing scrolls) and the command to tap stays on screen under it while
// screens change and a tap is shown.
func TestDemoKeepsTapCommandOnScreen(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo in -short mode")
	}
	scr := termtest.New(80, 24)
	dir := t.TempDir()
	socket := filepath.Join(dir, "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- demo(ctx, demoOpts{dir: dir, reader: "sim", lang: "nl", out: scr, cols: 80, rows: 24}) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-errc
		}
	}()

	waitfor.Cond(t, "the tap command on screen", func() bool { return scr.Contains(tapCommand(socket)) })
	line, err := control.Call(ctx, socket, control.Request{Op: "tap", ChipNumber: "04A1B2C3D4E5F6"})
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ Outcome string }
	if err := json.Unmarshal(line, &reply); err != nil || reply.Outcome != "saved" {
		t.Fatalf("tap: %s %v", line, err)
	}
	waitfor.Cond(t, "the saved screen", func() bool { return scr.Contains("+1 punt gespaard") })
	if n := scr.Scrolled(); n != 0 {
		t.Errorf("the terminal scrolled %d lines:\n%s", n, scr.Text())
	}
	if !scr.Contains(tapCommand(socket)) || !scr.Contains("Ctrl-C stops") {
		t.Errorf("the tap command is gone from the screen:\n%s", scr.Text())
	}
	if strings.Count(scr.Text(), "┌") != 1 {
		t.Errorf("not one kiosk screen on the terminal:\n%s", scr.Text())
	}
	if u := scr.Unknown(); len(u) > 0 {
		t.Errorf("escape sequences a terminal would not know: %q", u)
	}
	t.Logf("the terminal:\n%s", strings.Join(scr.Rows(), "\n"))

	cancel()
	stopped = true
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(waitfor.Timeout):
		t.Fatal("the demo did not stop")
	}
}
