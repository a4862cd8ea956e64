//go:build unix

package pn532_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/reader"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleCPU runs the driver with production options on an empty
// field; one op is one poll interval. cpu-% is process CPU over wall time,
// in percent of one core (emulator included: on hardware the kernel's SPI
// and GPIO work replaces it).
func BenchmarkIdleCPU(b *testing.B) {
	e := benchReader(b, nil)
	events := make(chan reader.Event, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, events) }()
	defer func() { cancel(); <-done }()
	if err := e.Chip.WaitListSeq(ctx, 1); err != nil { // initialised
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, t0 := cpuTime(b), time.Now()
	seq := e.Chip.ListSeq()
	if err := e.Chip.WaitListSeq(ctx, seq+b.N); err != nil {
		b.Fatal(err)
	}
	cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
}
