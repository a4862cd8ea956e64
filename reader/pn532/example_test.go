package pn532_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532hw"
)

// The real wiring on a Raspberry Pi: SPI0 CE0, IRQ on GPIO25, RSTPD_N on
// GPIO24 (see cmd/pn532-smoke for the header pins). Lines by name are
// searched on every GPIO chip, so this works on every Pi.
func Example() {
	dev, err := pn532hw.Open(pn532hw.Config{
		SPIDev: "/dev/spidev0.0",
		IRQ:    "GPIO25", // pn532hw.DefaultIRQ
		Reset:  "GPIO24", // pn532hw.DefaultReset
	}, clock.Real{}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Halt()
	events := make(chan reader.Event)
	go dev.Run(context.Background(), events)
	for ev := range events {
		if ev.Tap != nil {
			fmt.Printf("card %s\n", ev.Tap.Chip())
		}
	}
}

// The same driver over the emulator: a card resting on the reader is one tap.
func ExampleDev_Run() {
	chip := pn532emu.New(clock.Real{}, nil)
	defer chip.Close()
	opts := pn532.DefaultOpts
	opts.PollInterval = time.Millisecond
	dev, err := pn532.NewSPI(chip, chip.IRQ(), chip.Reset(), clock.Real{}, nil, &opts)
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Halt()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan reader.Event)
	done := make(chan error)
	go func() { done <- dev.Run(ctx, events) }()

	chip.Place(pn532emu.DESFire([]byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}))
	ev := <-events
	fmt.Println("tap", ev.Tap.Chip())
	cancel()
	fmt.Println(<-done)
	// Output:
	// tap 042F51B2712380
	// context canceled
}
