package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532hw"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spitest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pn532-smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	spiDev := fs.String("spi", "/dev/spidev0.0", "SPI device")
	hz := fs.Int64("hz", 1_000_000, "SPI clock in Hz")
	irq := fs.String("irq", pn532hw.DefaultIRQ, `IRQ line: a name searched on every chip ("GPIO25"), or "gpiochip0:GPIO25", "gpiochip0:25"; empty: poll the status byte`)
	rst := fs.String("reset", pn532hw.DefaultReset, `RSTPD_N line, as -irq; empty: no hardware reset`)
	record := fs.String("record", "", "write the SPI traffic and taps to this session file on exit")
	note := fs.String("note", "", "description stored in the session file (board, module, cards)")
	verbose := fs.Bool("v", false, "debug logging")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pn532-smoke [flags]   (prints the PN532's firmware and every tapped card's full UID)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pn532-smoke: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	parts, err := pn532hw.OpenParts(pn532hw.Config{SPIDev: *spiDev, SpeedHz: *hz, IRQ: *irq, Reset: *rst})
	if err != nil {
		fmt.Fprintf(stderr, "pn532-smoke: %v\n", err)
		return 1
	}
	var port spi.Port = parts.Port
	var rec *spitest.Record
	if *record != "" {
		rec = &spitest.Record{Port: parts.Port}
		port = rec
	}
	opts := parts.Opts
	opts.ClosePort = true
	dev, err := pn532.NewSPI(port, parts.IRQ, parts.Reset, clock.Real{}, log, &opts)
	if err != nil {
		parts.Close()
		fmt.Fprintf(stderr, "pn532-smoke: %v\n", err)
		return 1
	}
	order := "LSB-first in the SPI controller"
	if dev.SoftwareBitOrder() {
		order = "SPI mode 0 with software bit reversal"
	}
	fmt.Fprintf(stdout, "reader %s at %d Hz, %s; IRQ %q, reset %q\n", dev, *hz, order, *irq, *rst)
	fmt.Fprintln(stdout, "tap cards; Ctrl-C to stop. UIDs are printed whole: bench use only.")

	taps := watch(ctx, dev, stdout)

	code := 0
	if rec != nil {
		rec.Lock()
		s := pn532emu.NewSession(rec.Ops, *hz, dev.SoftwareBitOrder())
		rec.Unlock()
		s.Note, s.Taps = *note, taps
		if err := writeSession(*record, s); err != nil {
			fmt.Fprintf(stderr, "pn532-smoke: %v\n", err)
			code = 1
		} else {
			fmt.Fprintf(stdout, "recorded %d transactions and %d taps to %s\n", len(s.Ops), len(taps), *record)
		}
	}
	if err := dev.Halt(); err != nil {
		fmt.Fprintf(stderr, "pn532-smoke: %v\n", err)
		code = 1
	}
	return code
}

// watch runs the driver until ctx ends, printing the firmware once known,
// every tap and every change of health; it returns the taps as hex.
func watch(ctx context.Context, dev *pn532.Dev, stdout io.Writer) []string {
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan reader.Event)
	done := make(chan error, 1)
	go func() { done <- dev.Run(ctx, events) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var taps []string
	fwShown := false
	showFirmware := func() {
		if fw := dev.Firmware(); !fwShown && fw.IC != 0 {
			fwShown = true
			fmt.Fprintf(stdout, "firmware: %v\n", fw)
		}
	}
	for {
		select {
		case ev := <-events:
			showFirmware()
			switch {
			case ev.Tap != nil:
				uid := strings.ToUpper(hex.EncodeToString(ev.Tap.UID))
				taps = append(taps, uid)
				fmt.Fprintf(stdout, "%s  tap  %s  (%d bytes)\n", ev.Tap.At.Format("15:04:05.000"), uid, len(ev.Tap.UID))
			case ev.Health != nil:
				fmt.Fprintf(stdout, "%s  reader %v  %v\n", time.Now().Format("15:04:05.000"), ev.Health.State, ev.Health.Err)
			}
		case <-tick.C:
			showFirmware()
		case err := <-done:
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(stdout, "reader stopped: %v\n", err)
			}
			return taps
		}
	}
}

func writeSession(path string, s pn532emu.Session) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := s.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
