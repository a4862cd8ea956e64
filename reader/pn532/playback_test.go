package pn532_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"math/bits"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/spi/spitest"
)

// hx parses spaced hex; "…+N" appends N zero bytes.
func hx(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	for _, f := range strings.Fields(s) {
		if f[0] == '+' {
			n := 0
			for _, c := range f[1:] {
				n = n*10 + int(c-'0')
			}
			b = append(b, make([]byte, n)...)
			continue
		}
		v, err := hex.DecodeString(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, v...)
	}
	return b
}

// pollCycleOps is one poll cycle finding a DESFire card, on the wire in the
// chip's bit order, with status polling (no IRQ line): the bytes checked by
// hand against UM0701 §6.2 and §7.
func pollCycleOps(t *testing.T) []conntest.IO {
	ready := conntest.IO{W: hx(t, "02 00"), R: hx(t, "00 01")}
	ack := conntest.IO{W: hx(t, "03 +12"), R: hx(t, "01 00 00 FF 00 FF 00 +6")}
	return []conntest.IO{
		{W: hx(t, "01 00 00 FF 04 FC D4 4A 01 00 E1 00")}, // InListPassiveTarget 1 target, 106 kbps A
		ready, ack, ready,
		{W: hx(t, "03 +64"), R: hx(t, "01 00 00 FF 15 EB D5 4B 01 01 03 44 20 07 04 2F 51 B2 71 23 80 06 75 77 81 02 80 31 00 +36")},
		{W: hx(t, "01 00 00 FF 04 FC D4 32 01 00 F9 00")}, // RFConfiguration field off
		ready, ack, ready,
		{W: hx(t, "03 +24"), R: hx(t, "01 00 00 FF 02 FE D5 33 F8 00 +15")},
	}
}

func reversed(ops []conntest.IO) []conntest.IO {
	out := make([]conntest.IO, len(ops))
	for i, op := range ops {
		for _, b := range op.W {
			out[i].W = append(out[i].W, bits.Reverse8(b))
		}
		for _, b := range op.R {
			out[i].R = append(out[i].R, bits.Reverse8(b))
		}
	}
	return out
}

func TestPlaybackPollCycle(t *testing.T) {
	for _, c := range []struct {
		name  string
		order pn532.BitOrder
		wire  func([]conntest.IO) []conntest.IO
	}{
		{"LSB-first controller", pn532.BitOrderHardware, func(o []conntest.IO) []conntest.IO { return o }},
		{"software reversal", pn532.BitOrderSoftware, reversed},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &spitest.Playback{Playback: conntest.Playback{Ops: c.wire(pollCycleOps(t)), DontPanic: true}}
			o := testOpts()
			o.BitOrder = c.order
			dev, err := pn532.NewSPI(p, nil, nil, clock.NewFake(time.Unix(0, 0)), nil, &o)
			if err != nil {
				t.Fatal(err)
			}
			uid, err := dev.Poll(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := hx(t, "04 2F 51 B2 71 23 80"); !bytes.Equal(uid, want) {
				t.Fatalf("uid % X, want % X", uid, want)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
