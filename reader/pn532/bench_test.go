package pn532_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
)

// benchReader is the driver with production options over the emulator on
// the real clock. The emulator counts bus time but does not sleep it, so
// measured wall time is the host's own cost and bus time is reported apart.
func benchReader(b *testing.B, opts *pn532.Opts) *pn532emu.EmulatedReader {
	b.Helper()
	e, err := pn532emu.NewReaderOpts(clock.Real{}, slog.New(slog.DiscardHandler), nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Halt() })
	return e
}

// BenchmarkPollCycle is one poll cycle (InListPassiveTarget + field off) on
// an empty field, IRQ-driven: the steady state of an idle kiosk.
func BenchmarkPollCycle(b *testing.B) {
	e := benchReader(b, nil)
	ctx := context.Background()
	if _, err := e.Dev.Init(ctx); err != nil {
		b.Fatal(err)
	}
	bus0 := e.Chip.BusTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if uid, err := e.Dev.Poll(ctx); err != nil || uid != nil {
			b.Fatal(uid, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((e.Chip.BusTime()-bus0).Microseconds())/float64(b.N), "bus-µs/op")
}

// BenchmarkPollCycleStatusPolling is the same without an IRQ line.
func BenchmarkPollCycleStatusPolling(b *testing.B) {
	chip := pn532emu.New(clock.Real{}, nil)
	defer chip.Close()
	dev, err := pn532.NewSPI(chip, nil, chip.Reset(), clock.Real{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Halt()
	ctx := context.Background()
	if _, err := dev.Init(ctx); err != nil {
		b.Fatal(err)
	}
	bus0 := chip.BusTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := dev.Poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((chip.BusTime()-bus0).Microseconds())/float64(b.N), "bus-µs/op")
}

// BenchmarkTapLatency measures a card entering the field to its tap event
// leaving Run, with back-to-back polling (so the poll interval, a chosen
// pause, is left out). host-µs/op is that span: the emulator does not sleep
// bus time, so it is all host time beyond the bus (ns/op also counts taking
// the card away again).
func BenchmarkTapLatency(b *testing.B) {
	o := pn532.DefaultOpts
	o.PollInterval = time.Nanosecond
	e := benchReader(b, &o)
	events := make(chan reader.Event, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, events) }()
	defer func() { cancel(); <-done }()
	uid := []byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}
	var wall time.Duration
	for range b.N {
		t0 := time.Now()
		e.Chip.Place(pn532emu.DESFire(uid))
		ev := <-events
		wall += time.Since(t0)
		if ev.Tap == nil {
			b.Fatalf("event %+v", ev)
		}
		e.Chip.Remove(uid)
		// A list that began after the removal saw the field empty: the one
		// after the list in progress now.
		if err := e.Chip.WaitListSeq(ctx, e.Chip.ListSeq()+1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(wall.Microseconds())/float64(b.N), "host-µs/op")
}

// BenchmarkPollCycleCard is a poll cycle that reads a DESFire card: its
// bus-µs/op is what the bus adds to a tap's latency (at most two cycles: the
// one in progress when the card arrives, and the one that reads it).
func BenchmarkPollCycleCard(b *testing.B) {
	e := benchReader(b, nil)
	ctx := context.Background()
	if _, err := e.Dev.Init(ctx); err != nil {
		b.Fatal(err)
	}
	e.Chip.Place(pn532emu.DESFire([]byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}))
	bus0 := e.Chip.BusTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if uid, err := e.Dev.Poll(ctx); err != nil || uid == nil {
			b.Fatal(uid, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((e.Chip.BusTime()-bus0).Microseconds())/float64(b.N), "bus-µs/op")
}
