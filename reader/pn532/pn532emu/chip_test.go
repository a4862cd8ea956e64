package pn532emu

import (
	"bytes"
	"context"
	"log/slog"
	"math/bits"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"github.com/uitpas/tap-kiosk/reader/pn532/frame"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// host talks to a chip in logical bytes over an LSB-first connection.
type host struct {
	t *testing.T
	c spi.Conn
}

func newHost(t *testing.T, o Opts) (*Chip, host) {
	o.RefuseLSBFirst = false
	chip := New(clock.NewFake(time.Unix(0, 0)), &o)
	t.Cleanup(func() { chip.Close() })
	c, err := chip.Connect(physic.MegaHertz, spi.Mode0|spi.LSBFirst, 8)
	if err != nil {
		t.Fatal(err)
	}
	return chip, host{t, c}
}

func (h host) tx(w []byte, n int) []byte {
	h.t.Helper()
	r := make([]byte, max(n, len(w)))
	w = append(w, make([]byte, len(r)-len(w))...)
	if err := h.c.Tx(w, r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h host) command(data ...byte) {
	h.t.Helper()
	w, _ := frame.AppendInfo([]byte{0x01}, frame.HostToPN532, data)
	h.tx(w, 0)
}

func (h host) read(n int) (frame.Frame, error) {
	r := h.tx([]byte{0x03}, n+1)
	f, _, err := frame.Decode(r[1:])
	return f, err
}

func (h host) status() byte { return h.tx([]byte{0x02}, 2)[1] }

func TestAsleepUntilChipSelectHeldLow(t *testing.T) {
	chip, h := newHost(t, Opts{})
	if s := h.status(); s != 0xFF {
		t.Fatalf("status of a sleeping chip = %#x, want FF (MISO high)", s)
	}
	h.command(frame.CmdGetFirmwareVersion)
	if chip.Stats().Commands != 0 {
		t.Fatal("a sleeping chip heard a command")
	}
	h.tx([]byte{0x02}, 300) // 2.4 ms at 1 MHz
	if chip.Stats().Wakes != 1 {
		t.Fatal("not woken")
	}
	h.command(frame.CmdGetFirmwareVersion)
	if s := h.status(); s != 0x01 {
		t.Fatalf("status = %#x, want ready", s)
	}
	if f, err := h.read(12); err != nil || f.Kind != frame.ACK {
		t.Fatalf("got %+v %v, want ACK", f, err)
	}
	f, err := h.read(24)
	if err != nil || !bytes.Equal(f.Data, []byte{0x03, 0x32, 0x01, 0x06, 0x07}) {
		t.Fatalf("firmware reply %+v %v", f, err)
	}
}

// TestConnectOnceLikePeriph: Connect behaves as periph's sysfs-spi port:
// bad arguments are refused before the port counts as connected, a mode the
// controller refuses is refused after, and then no Connect succeeds again.
func TestConnectOnceLikePeriph(t *testing.T) {
	chip := New(clock.NewFake(time.Unix(0, 0)), &Opts{Awake: true, RefuseLSBFirst: true})
	defer chip.Close()
	if _, err := chip.Connect(0, spi.Mode0, 8); err == nil {
		t.Fatal("0 Hz accepted")
	}
	if _, err := chip.Connect(physic.MegaHertz, spi.Mode0, 0); err == nil {
		t.Fatal("0 bits per word accepted")
	}
	if _, err := chip.Connect(physic.MegaHertz, spi.Mode0|spi.LSBFirst, 8); err == nil {
		t.Fatal("LSB-first accepted")
	}
	if _, err := chip.Connect(physic.MegaHertz, spi.Mode0, 8); err == nil || !strings.Contains(err.Error(), "exactly once") {
		t.Fatalf("Connect after a refused LSB-first = %v, want the port already connected", err)
	}

	ok := New(clock.NewFake(time.Unix(0, 0)), &Opts{Awake: true, RefuseLSBFirst: true})
	defer ok.Close()
	if _, err := ok.Connect(physic.MegaHertz, spi.Mode0, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := ok.Connect(physic.MegaHertz, spi.Mode0, 8); err == nil {
		t.Fatal("second Connect accepted")
	}
}

func TestSoftwareReversalRequired(t *testing.T) {
	chip := New(clock.NewFake(time.Unix(0, 0)), &Opts{Awake: true, RefuseLSBFirst: true})
	defer chip.Close()
	c, err := chip.Connect(physic.MegaHertz, spi.Mode0, 8)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := frame.AppendInfo([]byte{0x01}, frame.HostToPN532, []byte{frame.CmdGetFirmwareVersion})
	if err := c.Tx(w, nil); err != nil { // forgot to reverse
		t.Fatal(err)
	}
	if s := chip.Stats(); s.Commands != 0 {
		t.Fatalf("an unreversed frame was heard as a command: %+v", s)
	}
	for i := range w {
		w[i] = bits.Reverse8(w[i])
	}
	if err := c.Tx(w, nil); err != nil {
		t.Fatal(err)
	}
	if s := chip.Stats(); s.Commands != 1 {
		t.Fatalf("a reversed frame was not heard: %+v", s)
	}
}

func TestSplitReadLosesAByte(t *testing.T) {
	_, h := newHost(t, Opts{Awake: true})
	h.command(frame.CmdGetFirmwareVersion)
	h.read(12) // ACK
	a := h.tx([]byte{0x03}, 6)
	b := h.tx([]byte{0x03}, 10)
	whole, _ := frame.AppendInfo(nil, frame.PN532ToHost, []byte{0x03, 0x32, 0x01, 0x06, 0x07})
	got := append(a[1:], b[1:]...)
	if bytes.HasPrefix(got, whole) {
		t.Fatal("a reply read in two transactions came out whole")
	}
	if _, _, err := frame.Decode(got); err == nil {
		t.Fatal("split read decoded")
	}
}

func TestNACKRepeatsAndACKAborts(t *testing.T) {
	chip, h := newHost(t, Opts{Awake: true})
	chip.Inject(Fault{Kind: CorruptDCS})
	h.command(frame.CmdGetFirmwareVersion)
	h.read(12)
	if _, err := h.read(24); err == nil {
		t.Fatal("corrupt reply decoded")
	}
	w := frame.AppendNACK([]byte{0x01})
	h.tx(w, 0)
	if f, err := h.read(24); err != nil || f.Data[0] != 0x03 {
		t.Fatalf("after NACK: %+v %v", f, err)
	}
	// InListPassiveTarget with MaxRetries FF blocks until a card comes...
	h.command(frame.CmdInListPassiveTarget, 1, 0)
	h.read(12)
	if h.status() == 0x01 {
		t.Fatal("empty field answered with MaxRetries FF")
	}
	// ...or the host aborts it with an ACK.
	h.tx(frame.AppendACK([]byte{0x01}), 0)
	chip.Place(DESFire([]byte{1, 2, 3, 4, 5, 6, 7}))
	if h.status() == 0x01 {
		t.Fatal("aborted command answered")
	}
	h.command(frame.CmdInListPassiveTarget, 1, 0)
	h.read(12)
	f, err := h.read(64)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := frame.ParseInList(f.Data)
	if err != nil || tg.N != 1 || !bytes.Equal(tg.T[0].UID, []byte{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("InList %+v %v", tg, err)
	}
}

func TestPresentTwiceIsTwoTaps(t *testing.T) {
	o := pn532.DefaultOpts
	o.PollInterval = 2 * time.Millisecond
	e, err := NewReaderOpts(clock.Real{}, slog.New(slog.DiscardHandler), nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Halt()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := make(chan reader.Event, 4)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, events) }()
	uid := []byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}
	for i := range 2 {
		if err := e.Present(ctx, uid); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-events:
			if ev.Tap == nil || !bytes.Equal(ev.Tap.UID, uid) {
				t.Fatalf("present %d: event %+v", i, ev)
			}
		case <-ctx.Done():
			t.Fatalf("present %d: no tap", i)
		}
	}
	if err := e.Present(ctx, []byte{1, 2, 3}); err == nil {
		t.Fatal("3-byte UID presented")
	}
	cancel()
	<-done
}

// TestNewCommandSupersedesPendingList: an InListPassiveTarget still waiting
// for a card is aborted by the next command, as on a real chip: a card that
// comes afterwards answers nothing, and the host reads the new command's
// ACK and reply only.
func TestNewCommandSupersedesPendingList(t *testing.T) {
	chip, h := newHost(t, Opts{Awake: true}) // MaxRetries FF: the list waits
	h.command(frame.CmdInListPassiveTarget, 1, 0)
	if f, err := h.read(12); err != nil || f.Kind != frame.ACK {
		t.Fatalf("got %+v %v, want the list's ACK", f, err)
	}
	h.command(frame.CmdGetFirmwareVersion)
	chip.Place(DESFire([]byte{1, 2, 3, 4, 5, 6, 7}))
	if f, err := h.read(12); err != nil || f.Kind != frame.ACK {
		t.Fatalf("got %+v %v, want the new command's ACK", f, err)
	}
	if f, err := h.read(24); err != nil || f.Kind != frame.Info || f.Data[0] != 0x03 {
		t.Fatalf("got %+v %v, want the firmware reply", f, err)
	}
	if s := h.status(); s == 0x01 {
		f, _ := h.read(64)
		t.Fatalf("the superseded list answered too: %+v", f)
	}
}

// TestStaleFramesFault: with StaleFrames the superseded command still
// answers, its reply queued ahead of the new command's ACK when it was not
// ready yet.
func TestStaleFramesFault(t *testing.T) {
	chip, h := newHost(t, Opts{Awake: true, StaleFrames: true, ListTime: 5 * time.Millisecond})
	h.command(frame.CmdRFConfiguration, frame.RFItemMaxRetries, 0x02, 0x01, 0x00)
	h.read(12)
	h.read(24)
	chip.Place(DESFire([]byte{1, 2, 3, 4, 5, 6, 7}))
	h.command(frame.CmdInListPassiveTarget, 1, 0)
	h.read(12)                             // its ACK; the reply takes ListTime
	h.command(frame.CmdGetFirmwareVersion) // before the list answered
	chip.clk.(*clock.Fake).Advance(5 * time.Millisecond)
	if f, err := h.read(64); err != nil || f.Kind != frame.Info || f.Data[0] != 0x4B {
		t.Fatalf("got %+v %v, want the stale list reply first", f, err)
	}
	if f, err := h.read(12); err != nil || f.Kind != frame.ACK {
		t.Fatalf("got %+v %v, want the new command's ACK", f, err)
	}
}

// TestSlowACK: the fault delays the ACK, and the reply with it.
func TestSlowACK(t *testing.T) {
	chip, h := newHost(t, Opts{Awake: true})
	chip.Inject(Fault{Kind: SlowACK, Delay: 60 * time.Millisecond})
	h.command(frame.CmdGetFirmwareVersion)
	if s := h.status(); s == 0x01 {
		t.Fatal("ACK ready at once")
	}
	chip.clk.(*clock.Fake).Advance(60 * time.Millisecond)
	if f, err := h.read(12); err != nil || f.Kind != frame.ACK {
		t.Fatalf("got %+v %v, want ACK", f, err)
	}
	if f, err := h.read(24); err != nil || f.Data[0] != 0x03 {
		t.Fatalf("got %+v %v, want the reply", f, err)
	}
}

// TestPhoneStallsWithEndlessATRRetries: with MxRtyATR FF a phone that offers
// NFC-DEP holds InListPassiveTarget; with a finite value it is listed.
func TestPhoneStallsWithEndlessATRRetries(t *testing.T) {
	chip, h := newHost(t, Opts{Awake: true})
	chip.Place(Phone([]byte{0x08, 1, 2, 3}))
	h.command(frame.CmdRFConfiguration, frame.RFItemMaxRetries, 0xFF, 0x01, 0x00)
	h.read(12)
	h.read(24)
	h.command(frame.CmdInListPassiveTarget, 1, 0)
	h.read(12)
	if h.status() == 0x01 {
		t.Fatal("listed a phone with MxRtyATR FF")
	}
	h.tx(frame.AppendACK([]byte{0x01}), 0) // abort
	h.command(frame.CmdRFConfiguration, frame.RFItemMaxRetries, 0x02, 0x01, 0x00)
	h.read(12)
	h.read(24)
	h.command(frame.CmdInListPassiveTarget, 1, 0)
	h.read(12)
	f, err := h.read(64)
	if err != nil {
		t.Fatal(err)
	}
	if tg, err := frame.ParseInList(f.Data); err != nil || tg.N != 1 || tg.T[0].SELRes != 0x60 {
		t.Fatalf("InList %+v %v", tg, err)
	}
}
