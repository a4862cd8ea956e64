package pn532_test

import (
	"context"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader/pn532"
	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// instantClock fires every timer at once, moving time on by its duration:
// every wait times out immediately, so a fuzzed exchange ends quickly
// whatever the chip says. One goroutine only.
type instantClock struct{ now time.Time }

func (c *instantClock) Now() time.Time { return c.now }
func (c *instantClock) NewTimer(d time.Duration) clock.Timer {
	t := &instantTimer{clk: c, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

type instantTimer struct {
	clk *instantClock
	c   chan time.Time
}

func (t *instantTimer) C() <-chan time.Time { return t.c }
func (t *instantTimer) Stop() bool          { return false }
func (t *instantTimer) Reset(d time.Duration) {
	t.clk.now = t.clk.now.Add(d)
	select {
	case t.c <- t.clk.now:
	default:
	}
}

// noisePort is a chip that answers every read with the fuzzer's bytes.
type noisePort struct {
	data []byte
	pos  int
	tx   int
}

func (p *noisePort) String() string { return "noise" }
func (p *noisePort) Connect(physic.Frequency, spi.Mode, int) (spi.Conn, error) {
	return p, nil
}
func (p *noisePort) Duplex() conn.Duplex { return conn.Full }
func (p *noisePort) TxPackets([]spi.Packet) error {
	return nil
}
func (p *noisePort) Tx(w, r []byte) error {
	p.tx++
	for i := range r {
		if len(p.data) == 0 {
			r[i] = 0xFF
			continue
		}
		r[i] = p.data[p.pos%len(p.data)]
		p.pos++
	}
	return nil
}

// FuzzDriverReplies feeds arbitrary chip output to Init and Poll: whatever
// comes back, the driver must return (a UID of a valid length, or an error)
// and never panic.
func FuzzDriverReplies(f *testing.F) {
	for _, c := range pollCycleOps(&testing.T{}) {
		f.Add(c.R)
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &noisePort{data: data}
		o := pn532.Opts{BitOrder: pn532.BitOrderHardware, Resends: 2}
		clk := &instantClock{}
		d, err := pn532.NewSPI(p, nil, nil, clk, nil, &o)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		_, _ = d.Init(ctx)
		for range 3 {
			uid, err := d.Poll(ctx)
			if err == nil && uid != nil && len(uid) != 4 && len(uid) != 7 && len(uid) != 10 {
				t.Fatalf("UID of %d bytes", len(uid))
			}
		}
		// Every wait is bounded by a timeout: polling the status byte for a
		// whole reply timeout is thousands of transactions, but never
		// unbounded. (A crasher from an earlier, tighter check on the
		// transaction count is kept in testdata/fuzz.)
		if spent := clk.now.Sub(time.Time{}); spent > 5*time.Minute {
			t.Fatalf("%v of waiting and %d transactions: the driver loops", spent, p.tx)
		}
	})
}
