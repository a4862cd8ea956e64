package display

import (
	"fmt"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display/internal/mailbox"
)

// Rotator is a Display that, while the current screen is Idle with a
// checkinCode, alternates it with the Spaarcode screen (the event's QR code,
// for passholders who save with the UiTPAS app) every period. Any other
// screen passes straight through and stops the alternation; the core never
// sends Spaarcode itself.
type Rotator struct {
	inner Display
	clk   clock.Clock
	every time.Duration
	box   *mailbox.Box[Screen]
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// NewRotator wraps inner. every <= 0 disables the alternation.
func NewRotator(inner Display, clk clock.Clock, every time.Duration) *Rotator {
	r := &Rotator{inner: inner, clk: clk, every: every, box: mailbox.New[Screen](), done: make(chan struct{})}
	r.wg.Add(1)
	go r.run()
	return r
}

// Show hands s over and returns at once.
func (r *Rotator) Show(s Screen) { r.box.Put(s) }

// Halt stops the alternation and halts inner.
func (r *Rotator) Halt() error {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
	return r.inner.Halt()
}

func (r *Rotator) String() string { return fmt.Sprintf("rotator(%s, %s)", r.inner, r.every) }

func (r *Rotator) run() {
	defer r.wg.Done()
	var (
		cur    Screen
		timer  clock.Timer
		onCode bool
	)
	stop := func() {
		if timer != nil {
			timer.Stop()
			timer = nil
		}
	}
	defer stop()
	for {
		var tick <-chan time.Time
		if timer != nil {
			tick = timer.C()
		}
		select {
		case <-r.done:
			return
		case <-r.box.C():
			s, ok := r.box.Take()
			if !ok {
				continue
			}
			stop()
			cur, onCode = s, false
			r.inner.Show(s)
			if s.Kind == Idle && s.Code != "" && r.every > 0 {
				timer = r.clk.NewTimer(r.every)
			}
		case <-tick:
			onCode = !onCode
			if onCode {
				r.inner.Show(Screen{Kind: Spaarcode, Lang: cur.Lang, EventTitle: cur.EventTitle, Code: cur.Code})
			} else {
				r.inner.Show(cur)
			}
			timer.Reset(r.every)
		}
	}
}
