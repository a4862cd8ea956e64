package pn532_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/frame"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
	"periph.io/x/conn/v3/spi/spitest"
)

// Tests of what went wrong with the driver in the field.

// fieldOpts are the production timeouts (ACKTimeout, ReplyTimeout,
// StatusPoll from DefaultOpts) with test-sized recovery waits.
func fieldOpts() pn532.Opts {
	o := testOpts()
	o.ACKTimeout, o.ReplyTimeout, o.StatusPoll = 0, 0, 0
	return o
}

// stuckIRQ is an IRQ line that never moves: level 0 is stuck low (always
// "ready"), 1 stuck high or unwired (never asserting).
type stuckIRQ struct {
	level int
	ch    chan struct{}
}

func (s stuckIRQ) Value() (int, error)      { return s.level, nil }
func (s stuckIRQ) Falling() <-chan struct{} { return s.ch }
func (s stuckIRQ) Close() error             { return nil }

// TestStuckIRQLine: a line that does not follow the chip, in either
// direction, costs at most an ACK timeout per wait until it is detected, then
// the status byte is polled, with one warning. Before, a line stuck low was
// taken as "ready" at every timeout, and a poll cost the whole reply timeout
// (1 s).
func TestStuckIRQLine(t *testing.T) {
	for _, c := range []struct {
		name  string
		level int
	}{
		{"stuck low", 0},
		{"stuck high", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			noLeaks(t)
			co := pn532emu.DefaultOpts
			co.ListTime = 25 * time.Millisecond // reading a UID takes ~25–30 ms
			logs := &logRecorder{}
			o := fieldOpts()
			r := newRig(t, rigOpts{chip: &co, drv: &o, irq: stuckIRQ{c.level, make(chan struct{})}, log: slog.New(logs)})
			ctx := context.Background()
			start := r.clk.Now()
			if _, err := r.dev.Init(ctx); err != nil {
				t.Fatal(err)
			}
			r.chip.Place(pn532emu.DESFire(uid7))
			for i := range 8 {
				t0 := r.clk.Now()
				uid, err := r.dev.Poll(ctx)
				if err != nil || !bytes.Equal(uid, uid7) {
					t.Fatalf("poll %d = % X, %v", i, uid, err)
				}
				// One ACK timeout for a wait before detection, a list's RF
				// time and status polling after.
				if d := r.clk.Now().Sub(t0); d > 250*time.Millisecond {
					t.Errorf("poll %d took %v", i, d)
				}
			}
			if d := r.clk.Now().Sub(start); d > time.Second {
				t.Errorf("init and 8 polls took %v of chip time", d)
			}
			if n := logs.count(slog.LevelWarn, "IRQ line"); n != 1 {
				t.Errorf("%d warnings about the IRQ line, want 1", n)
			}
		})
	}
}

// TestHealthyIRQLineKept: a working line is never given up, even when the
// chip's replies are slow.
func TestHealthyIRQLineKept(t *testing.T) {
	noLeaks(t)
	co := pn532emu.DefaultOpts
	co.ListTime = 25 * time.Millisecond
	logs := &logRecorder{}
	o := fieldOpts()
	r := newRig(t, rigOpts{chip: &co, drv: &o, log: slog.New(logs)})
	ctx := context.Background()
	if _, err := r.dev.Init(ctx); err != nil {
		t.Fatal(err)
	}
	r.chip.Place(pn532emu.DESFire(uid7))
	for range 4 {
		r.chip.Inject(pn532emu.Fault{Kind: pn532emu.SlowReply, Delay: 120 * time.Millisecond})
		if uid, err := r.dev.Poll(ctx); err != nil || !bytes.Equal(uid, uid7) {
			t.Fatalf("poll = % X, %v", uid, err)
		}
	}
	if n := logs.count(slog.LevelWarn, "IRQ line"); n != 0 {
		t.Errorf("a working IRQ line was given up (%d warnings)", n)
	}
}

// TestSlowACKAfterPowerOn: a chip that takes 60 ms to acknowledge each
// command after power-on still initialises (it did not with a 30 ms ACK
// timeout: every resend superseded the command the chip was about to ACK).
func TestSlowACKAfterPowerOn(t *testing.T) {
	noLeaks(t)
	o := fieldOpts()
	r := newRig(t, rigOpts{drv: &o})
	// Every command slow to acknowledge, for longer than Init lasts.
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.SlowACK, Count: 50, Delay: 60 * time.Millisecond})
	before := r.chip.Stats()
	if _, err := r.dev.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	// SAMConfiguration twice (the first after wake-up is lost), then
	// GetFirmwareVersion, MaxRetries, field off: no resend.
	if n := r.chip.Stats().Commands - before.Commands; n != 5 {
		t.Errorf("%d commands sent, want 5", n)
	}
}

// TestInitSetsFiniteRetries: the bytes Init writes set RFConfiguration
// MaxRetries with a finite MxRtyATR (02) as well as a finite passive
// activation count: 32 05 02 01 NN.
func TestInitSetsFiniteRetries(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	chip := pn532emu.New(r.clk, nil)
	defer chip.Close()
	rec := &spitest.Record{Port: chip}
	o := testOpts()
	o.MaxRetries = 3
	dev, err := pn532.NewSPI(rec, chip.IRQ(), chip.Reset(), r.clk, nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Halt()
	if _, err := dev.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.Lock()
	defer rec.Unlock()
	var got [][]byte
	for _, op := range rec.Ops {
		w := wire(op.W, dev.SoftwareBitOrder())
		if len(w) < 2 || w[0] != 0x01 {
			continue
		}
		f, _, err := frame.Decode(w[1:])
		if err == nil && f.Kind == frame.Info && len(f.Data) >= 2 && f.Data[0] == frame.CmdRFConfiguration && f.Data[1] == frame.RFItemMaxRetries {
			got = append(got, bytes.Clone(f.Data))
		}
	}
	want := []byte{0x32, 0x05, 0x02, 0x01, 0x03}
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("MaxRetries commands written: % X, want one % X", got, want)
	}
}

// wire turns bytes as shifted on the bus into the chip's logical bytes.
func wire(b []byte, soft bool) []byte {
	if !soft {
		return b
	}
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = reverse8(c)
	}
	return out
}

func reverse8(b byte) byte {
	var r byte
	for i := 0; i < 8; i++ {
		r = r<<1 | b>>i&1
	}
	return r
}

// TestPhoneDoesNotStallPoll: a phone presenting itself as an NFC-DEP target
// does not hold the poll until the reply timeout (the chip retries ATR_REQ
// forever with MxRtyATR FF).
func TestPhoneDoesNotStallPoll(t *testing.T) {
	noLeaks(t)
	o := fieldOpts()
	r := newRig(t, rigOpts{drv: &o, silent: true})
	ctx := context.Background()
	if _, err := r.dev.Init(ctx); err != nil {
		t.Fatal(err)
	}
	phone := []byte{0x08, 0x5A, 0x11, 0x93}
	r.chip.Place(pn532emu.Phone(phone))
	t0 := r.clk.Now()
	uid, err := r.dev.Poll(ctx)
	if errors.Is(err, pn532.ErrTimeout) {
		t.Fatalf("Poll = %v: the phone stalled the chip", err)
	}
	if err != nil || !bytes.Equal(uid, phone) {
		t.Fatalf("Poll = % X, %v", uid, err)
	}
	if d := r.clk.Now().Sub(t0); d > 100*time.Millisecond {
		t.Errorf("poll with a phone in the field took %v", d)
	}
}

// TestStaleFramesFromSupersededCommand runs the driver against the
// emulator's StaleFrames fault: a command resent after a slow ACK does not
// supersede the first, so both answer, and the second's ACK and reply come
// as stale frames during the next exchange. The driver drops them (a NACK
// would only bring a stale frame back) and is in step again after one
// exchange, where it used to NACK them and carry a stale pair along forever.
func TestStaleFramesFromSupersededCommand(t *testing.T) {
	noLeaks(t)
	co := pn532emu.DefaultOpts
	co.StaleFrames = true
	r := newRig(t, rigOpts{chip: &co})
	ctx := context.Background()
	if _, err := r.dev.Init(ctx); err != nil {
		t.Fatal(err)
	}
	r.chip.Place(pn532emu.DESFire(uid7))
	// Slower than testOpts' 15 ms ACK timeout: InListPassiveTarget is sent twice.
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.SlowACK, Delay: 20 * time.Millisecond})
	for i := range 3 {
		if uid, err := r.dev.Poll(ctx); err != nil || !bytes.Equal(uid, uid7) {
			t.Fatalf("poll %d = % X, %v", i, uid, err)
		}
	}
	if r.chip.Pending() != 0 {
		t.Error("the slow ACK never happened")
	}
	if v, _ := r.chip.IRQ().Value(); v == 0 {
		t.Error("out of step: the chip still holds frames for the host after three polls")
	}
	// In step: the chip holds nothing more for the host.
	if uid, err := r.dev.Poll(ctx); err != nil || !bytes.Equal(uid, uid7) {
		t.Fatalf("last poll = % X, %v", uid, err)
	}
}
