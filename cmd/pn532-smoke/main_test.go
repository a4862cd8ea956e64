package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
)

func TestWatchPrintsFirmwareAndWholeUIDs(t *testing.T) {
	o := pn532.DefaultOpts
	o.PollInterval = 2 * time.Millisecond
	e, err := pn532emu.NewReaderOpts(clock.Real{}, slog.New(slog.DiscardHandler), nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Halt()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	done := make(chan []string, 1)
	go func() { done <- watch(ctx, e.Dev, &out) }()
	uid := []byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}
	if err := e.Present(ctx, uid); err != nil {
		t.Fatal(err)
	}
	cancel()
	taps := <-done
	if len(taps) != 1 || taps[0] != "042F51B2712380" {
		t.Fatalf("taps %v", taps)
	}
	if s := out.String(); !strings.Contains(s, "tap  042F51B2712380") || !strings.Contains(s, "firmware: PN532 v1.6") {
		t.Fatalf("output:\n%s", s)
	}
}

// TestDefaultLines: the wiring's lines are the defaults, by name (searched
// on every chip), not chip:offset.
func TestDefaultLines(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, want := range []string{`(default "GPIO25")`, `(default "GPIO24")`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("usage lacks %s:\n%s", want, errb.String())
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
		t.Errorf("-h exit %d", code)
	}
	if code := run(context.Background(), []string{"-nope"}, &out, &errb); code != 2 {
		t.Errorf("bad flag exit %d", code)
	}
}
