package pn532_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/frame"
	"github.com/uitpas/tap-kiosk/reader/pn532/pn532emu"
)

var (
	uid7  = []byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}
	uid7b = []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}
)

// TestBitOrder runs the driver over an emulated port that connects once, as
// periph's sysfs-spi does (a Connect refused on the mode counts as the one).
func TestBitOrder(t *testing.T) {
	for _, c := range []struct {
		name     string
		refuse   bool
		order    pn532.BitOrder
		soft     bool
		failOpen bool
	}{
		{"Pi refuses LSB-first, auto reverses in software", true, pn532.BitOrderAuto, true, false},
		{"controller shifts LSB-first, auto still reverses", false, pn532.BitOrderAuto, true, false},
		{"software forced", false, pn532.BitOrderSoftware, true, false},
		{"hardware on a controller that shifts LSB-first", false, pn532.BitOrderHardware, false, false},
		{"hardware required but refused", true, pn532.BitOrderHardware, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			noLeaks(t)
			fk := newRig(t, rigOpts{}).clk // for the auto-advancing clock only
			co := pn532emu.DefaultOpts
			co.RefuseLSBFirst = c.refuse
			chip := pn532emu.New(fk, &co)
			defer chip.Close()
			o := testOpts()
			o.BitOrder = c.order
			dev, err := pn532.NewSPI(chip, chip.IRQ(), chip.Reset(), fk, testLogger(t), &o)
			if c.failOpen {
				if err == nil {
					t.Fatal("NewSPI accepted a port that refuses LSB-first")
				}
				if !strings.HasPrefix(err.Error(), "pn532: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Halt()
			if dev.SoftwareBitOrder() != c.soft {
				t.Errorf("software bit order = %v, want %v", dev.SoftwareBitOrder(), c.soft)
			}
			fw, err := dev.Init(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fw != (frame.Firmware{IC: 0x32, Ver: 1, Rev: 6, Support: 7}) {
				t.Errorf("firmware %v", fw)
			}
		})
	}
}

func TestInitWakesAndRetriesSAMConfiguration(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{})
	if _, err := r.dev.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := r.chip.Stats()
	if s.Wakes != 1 || s.Lost != 1 {
		t.Errorf("wakes %d, lost %d; want 1 and 1 (the first SAMConfiguration after wake-up)", s.Wakes, s.Lost)
	}
	if r.chip.Field() {
		t.Error("RF field left on after init")
	}
	// MaxRetries must be finite: an empty field must answer, not block.
	uid, err := r.dev.Poll(context.Background())
	if err != nil || uid != nil {
		t.Fatalf("Poll on an empty field = % X, %v", uid, err)
	}
}

func TestNotAPN532(t *testing.T) {
	noLeaks(t)
	co := pn532emu.DefaultOpts
	co.Firmware = [4]byte{0x31, 0x01, 0x00, 0x00}
	r := newRig(t, rigOpts{chip: &co})
	if _, err := r.dev.Init(context.Background()); !errors.Is(err, pn532.ErrNotPN532) {
		t.Fatalf("Init = %v, want ErrNotPN532", err)
	}
}

func TestPollFieldOffAndUIDLengths(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{})
	ctx := context.Background()
	if _, err := r.dev.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, card := range []pn532emu.Card{
		pn532emu.Classic([]byte{0xDE, 0xAD, 0xBE, 0xEF}),
		pn532emu.DESFire(uid7),
		pn532emu.DESFire([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}),
	} {
		r.chip.Place(card)
		uid, err := r.dev.Poll(ctx)
		if err != nil || !bytes.Equal(uid, card.UID) {
			t.Errorf("Poll = % X, %v; want % X", uid, err, card.UID)
		}
		if r.chip.Field() {
			t.Error("RF field on after a poll cycle")
		}
		r.chip.Clear()
	}
}

func TestTapOncePerPresence(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	events, stop := r.run()
	r.chip.Place(pn532emu.DESFire(uid7))
	tap := nextTap(t, events)
	if !bytes.Equal(tap.UID, uid7) || tap.At.IsZero() {
		t.Fatalf("tap %+v", tap)
	}
	r.cycles(5) // resting on the reader
	quiet(t, events)
	r.chip.Remove(uid7)
	r.cycles(2)
	quiet(t, events)
	r.chip.Place(pn532emu.DESFire(uid7))
	if tap := nextTap(t, events); !bytes.Equal(tap.UID, uid7) {
		t.Fatalf("second tap % X", tap.UID)
	}
	stop()
}

func TestAbsentCycles(t *testing.T) {
	noLeaks(t)
	o := testOpts()
	o.AbsentCycles = 3
	r := newRig(t, rigOpts{drv: &o, silent: true})
	events, stop := r.run()
	r.chip.Place(pn532emu.DESFire(uid7))
	nextTap(t, events)
	// Gone for a single cycle: a flicker, not a new tap.
	r.chip.Remove(uid7)
	r.cycles(1)
	r.chip.Place(pn532emu.DESFire(uid7))
	r.cycles(3)
	quiet(t, events)
	stop()
}

func TestTwoCardsDeterministic(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	events, stop := r.run()
	r.chip.Place(pn532emu.DESFire(uid7b), pn532emu.DESFire(uid7)) // uid7 > uid7b
	if tap := nextTap(t, events); !bytes.Equal(tap.UID, uid7) {
		t.Fatalf("first tap % X, want % X", tap.UID, uid7)
	}
	r.cycles(4)
	quiet(t, events) // both rest: no flapping between them
	r.chip.Remove(uid7)
	if tap := nextTap(t, events); !bytes.Equal(tap.UID, uid7b) {
		t.Fatalf("second tap % X, want % X", tap.UID, uid7b)
	}
	stop()
}

// TestFaults injects every fault kind while the driver runs; each must end
// in recovery (a card placed afterwards is read) with no panic and no
// goroutine left behind.
func TestFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault pn532emu.Fault
		check func(t *testing.T, s pn532emu.Stats)
	}{
		{"dropped ack", pn532emu.Fault{Kind: pn532emu.DropACK, Count: 2}, func(t *testing.T, s pn532emu.Stats) {
			if s.Lost < 2 {
				t.Errorf("lost %d", s.Lost)
			}
		}},
		{"corrupt LCS", pn532emu.Fault{Kind: pn532emu.CorruptLCS, Count: 2}, nacked},
		{"corrupt DCS", pn532emu.Fault{Kind: pn532emu.CorruptDCS, Count: 2}, nacked},
		{"garbage", pn532emu.Fault{Kind: pn532emu.Garbage, Count: 2}, nacked},
		{"noisy preamble", pn532emu.Fault{Kind: pn532emu.NoisyPreamble, Count: 3}, nil},
		{"slow reply", pn532emu.Fault{Kind: pn532emu.SlowReply, Count: 2, Delay: 40 * time.Millisecond}, nil},
		{"reply slower than the timeout", pn532emu.Fault{Kind: pn532emu.SlowReply, Count: 1, Delay: time.Second}, nil},
		{"ack slower than the timeout", pn532emu.Fault{Kind: pn532emu.SlowACK, Count: 2, Delay: 40 * time.Millisecond}, nil},
		{"silent for a while", pn532emu.Fault{Kind: pn532emu.Silence, Count: 12}, nil},
		{"silent until reset", pn532emu.Fault{Kind: pn532emu.Silence}, func(t *testing.T, s pn532emu.Stats) {
			if s.Resets == 0 {
				t.Error("no hardware reset")
			}
		}},
		{"too many bad frames", pn532emu.Fault{Kind: pn532emu.CorruptDCS, Count: 10}, nacked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noLeaks(t)
			r := newRig(t, rigOpts{silent: true})
			events, stop := r.run()
			r.cycles(2)
			r.chip.Inject(c.fault)
			r.chip.Place(pn532emu.DESFire(uid7))
			for {
				ev := next(t, events)
				if ev.Health != nil {
					t.Logf("health %v: %v", ev.Health.State, ev.Health.Err)
					continue
				}
				if !bytes.Equal(ev.Tap.UID, uid7) {
					t.Fatalf("tap % X, want % X", ev.Tap.UID, uid7)
				}
				break
			}
			r.cycles(2)
			quiet(t, events)
			stop()
			if n := r.chip.Pending(); n != 0 {
				t.Errorf("%d fault occurrences never happened", n)
			}
			if c.check != nil {
				c.check(t, r.chip.Stats())
			}
		})
	}
}

func nacked(t *testing.T, s pn532emu.Stats) {
	if s.NACKs == 0 {
		t.Error("the driver never sent a NACK")
	}
}

func TestStaleReplyFromBeforeReboot(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.StaleReply})
	events, stop := r.run()
	r.cycles(3)
	quiet(t, events) // the stale reply's card (DEADBEEF) is not a tap
	r.chip.Place(pn532emu.DESFire(uid7))
	if tap := nextTap(t, events); !bytes.Equal(tap.UID, uid7) {
		t.Fatalf("tap % X", tap.UID)
	}
	stop()
}

func TestHealthFaultAndRecovery(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	events, stop := r.run()
	r.cycles(2)
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.Silence})
	ev := next(t, events)
	if ev.Health == nil || ev.Health.State != reader.Fault || ev.Health.Err == nil {
		t.Fatalf("got %+v, want Health Fault with a cause", ev)
	}
	ev = next(t, events)
	if ev.Health == nil || ev.Health.State != reader.OK {
		t.Fatalf("got %+v, want Health OK", ev)
	}
	if r.chip.Stats().Resets == 0 {
		t.Error("recovered without a hardware reset")
	}
	r.chip.Place(pn532emu.DESFire(uid7))
	nextTap(t, events)
	stop()
}

func TestSilentWithoutResetLineStaysFaulted(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{noRST: true, silent: true})
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.Silence})
	events, stop := r.run()
	ev := next(t, events)
	if ev.Health == nil || ev.Health.State != reader.Fault {
		t.Fatalf("got %+v, want Health Fault", ev)
	}
	// It keeps trying with backoff, quietly, and stops cleanly on cancel.
	r.clk.Advance(time.Second)
	quiet(t, events)
	stop()
}

func TestStatusPollingWithoutIRQ(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{noIRQ: true, silent: true})
	events, stop := r.run()
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.SlowReply, Count: 1, Delay: 30 * time.Millisecond})
	r.chip.Place(pn532emu.DESFire(uid7))
	nextTap(t, events)
	stop()
}

// deadIRQ is a miswired IRQ line: always high, never an edge.
type deadIRQ struct{ ch chan struct{} }

func (d deadIRQ) Value() (int, error)      { return 1, nil }
func (d deadIRQ) Falling() <-chan struct{} { return d.ch }
func (d deadIRQ) Close() error             { return nil }

func TestDeadIRQLineFallsBackToStatusPolling(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{irq: deadIRQ{make(chan struct{})}, silent: true})
	events, stop := r.run()
	r.chip.Place(pn532emu.DESFire(uid7))
	if tap := nextTap(t, events); !bytes.Equal(tap.UID, uid7) {
		t.Fatalf("tap % X", tap.UID)
	}
	stop()
}

func TestHalt(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	events, _ := r.run()
	r.chip.Place(pn532emu.DESFire(uid7))
	nextTap(t, events)
	if err := r.dev.Halt(); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.Halt(); err != nil {
		t.Fatalf("second Halt: %v", err)
	}
	if r.chip.Field() {
		t.Error("field on after Halt")
	}
	if _, err := r.dev.Poll(context.Background()); !errors.Is(err, pn532.ErrHalted) {
		t.Errorf("Poll after Halt = %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	_, stop := r.run()
	r.cycles(1)
	if err := r.dev.Run(context.Background(), make(chan reader.Event)); !errors.Is(err, pn532.ErrBusy) {
		t.Fatalf("second Run = %v, want ErrBusy", err)
	}
	stop()
}

func TestRunStopsOnFullChannel(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	events := make(chan reader.Event) // nobody reads
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.dev.Run(ctx, events) }()
	r.chip.Place(pn532emu.DESFire(uid7))
	wctx, wcancel := context.WithTimeout(context.Background(), guard)
	defer wcancel()
	if err := r.chip.WaitListed(wctx, uid7); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(guard):
		t.Fatal("Run blocked on a full channel after cancel")
	}
}

func TestString(t *testing.T) {
	r := newRig(t, rigOpts{silent: true})
	if s := r.dev.String(); s != "pn532(pn532emu)" {
		t.Errorf("String() = %q", s)
	}
}

// TestPollCleanErrors: when a fault outlasts every retry, Poll ends in a
// sentinel error the caller can branch on, and the next Init recovers.
func TestPollCleanErrors(t *testing.T) {
	for _, c := range []struct {
		fault pn532emu.Fault
		want  error
	}{
		{pn532emu.Fault{Kind: pn532emu.DropACK, Count: 100}, pn532.ErrNoACK},
		{pn532emu.Fault{Kind: pn532emu.Silence}, pn532.ErrNoACK},
		{pn532emu.Fault{Kind: pn532emu.CorruptDCS, Count: 100}, pn532.ErrBadFrame},
		{pn532emu.Fault{Kind: pn532emu.CorruptLCS, Count: 100}, pn532.ErrBadFrame},
		{pn532emu.Fault{Kind: pn532emu.Garbage, Count: 100}, pn532.ErrBadFrame},
		{pn532emu.Fault{Kind: pn532emu.SlowReply, Count: 1, Delay: time.Second}, pn532.ErrTimeout},
	} {
		t.Run(c.fault.Kind.String(), func(t *testing.T) {
			noLeaks(t)
			r := newRig(t, rigOpts{silent: true})
			ctx := context.Background()
			if _, err := r.dev.Init(ctx); err != nil {
				t.Fatal(err)
			}
			r.chip.Inject(c.fault)
			if _, err := r.dev.Poll(ctx); !errors.Is(err, c.want) {
				t.Fatalf("Poll = %v, want %v", err, c.want)
			}
		})
	}
}

func TestPollCanceled(t *testing.T) {
	noLeaks(t)
	r := newRig(t, rigOpts{silent: true})
	if _, err := r.dev.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.chip.Inject(pn532emu.Fault{Kind: pn532emu.Silence})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.dev.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Poll = %v, want context.Canceled", err)
	}
}
