// Package signal plays the kiosk's buzzer and LED patterns on two output
// lines. Signal returns at once; a goroutine plays the pattern on an injected
// clock; a new signal cuts the one playing short.
//
// The patterns assume an active buzzer (it sounds while its line is high)
// and one LED, and differ both by ear and by eye, so a passholder who cannot
// see the screen, or hear the beep, still knows what happened:
//
//	saved          one short beep, LED on 1.5 s
//	already saved  two short beeps, LED on 1 s
//	refused        one long beep, LED blinking fast
//	fault          three long beeps, LED blinking slowly
//	identify       10 s of LED blinking twice a second, a chirp each second
package signal

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/internal/mailbox"
)

// LineSetter is an output line; go-gpiocdev's *Line is one.
type LineSetter interface {
	SetValue(value int) error
}

// Step holds the buzzer and LED in one state for D.
type Step struct {
	Buzzer, LED bool
	D           time.Duration
}

const ms = time.Millisecond

// Steps returns the steps of p; after the last both lines go low.
func Steps(p display.Pattern) []Step {
	switch p {
	case display.SignalSaved:
		return []Step{{true, true, 120 * ms}, {false, true, 1380 * ms}}
	case display.SignalAlreadySaved:
		return []Step{{true, true, 80 * ms}, {false, true, 80 * ms}, {true, true, 80 * ms}, {false, true, 760 * ms}}
	case display.SignalRefused:
		s := []Step{{true, true, 100 * ms}, {true, false, 100 * ms}, {true, true, 100 * ms}, {true, false, 100 * ms}, {true, true, 100 * ms}}
		for range 3 {
			s = append(s, Step{false, false, 100 * ms}, Step{false, true, 100 * ms})
		}
		return s
	case display.SignalFault:
		var s []Step
		for range 3 {
			s = append(s, Step{true, true, 300 * ms}, Step{false, false, 200 * ms})
		}
		return s
	case display.SignalIdentify:
		var s []Step
		for range 10 { // one second each
			s = append(s, Step{true, true, 50 * ms}, Step{false, true, 200 * ms}, Step{false, false, 250 * ms},
				Step{false, true, 250 * ms}, Step{false, false, 250 * ms})
		}
		return s
	}
	return nil
}

// Indicator plays patterns on a buzzer and an LED line; either may be nil.
type Indicator struct {
	buzzer, led LineSetter
	clk         clock.Clock
	closers     []func() error // lines OpenHardware requested
	box         *mailbox.Box[display.Pattern]
	done        chan struct{}
	wg          sync.WaitGroup
	once        sync.Once

	mu  sync.Mutex
	err error
}

// New returns an indicator on the two lines, which it sets low.
func New(buzzer, led LineSetter, clk clock.Clock) *Indicator {
	if clk == nil {
		clk = clock.Real{}
	}
	i := &Indicator{buzzer: buzzer, led: led, clk: clk, box: mailbox.New[display.Pattern](), done: make(chan struct{})}
	i.set(false, false)
	i.wg.Add(1)
	go i.run()
	return i
}

// Signal starts p, cutting short a pattern that is playing, and returns at
// once.
func (i *Indicator) Signal(p display.Pattern) { i.box.Put(p) }

// Err is the last error setting a line, nil when the last set went through.
func (i *Indicator) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// Halt stops playing, sets both lines low and releases lines it requested.
func (i *Indicator) Halt() error {
	var err error
	i.once.Do(func() {
		close(i.done)
		i.wg.Wait()
		err = i.set(false, false)
		for _, c := range i.closers {
			err = errors.Join(err, c())
		}
	})
	return err
}

func (i *Indicator) String() string { return "signal(buzzer+led)" }

func (i *Indicator) set(buzzer, led bool) error {
	var err error
	for _, l := range []struct {
		line LineSetter
		on   bool
	}{{i.buzzer, buzzer}, {i.led, led}} {
		if l.line == nil {
			continue
		}
		v := 0
		if l.on {
			v = 1
		}
		if e := l.line.SetValue(v); e != nil {
			err = errors.Join(err, fmt.Errorf("signal: set line: %w", e))
		}
	}
	i.mu.Lock()
	i.err = err
	i.mu.Unlock()
	return err
}

func (i *Indicator) run() {
	defer i.wg.Done()
	var (
		steps []Step
		timer clock.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var tick <-chan time.Time
		if timer != nil {
			tick = timer.C()
		}
		select {
		case <-i.done:
			return
		case <-i.box.C():
			p, ok := i.box.Take()
			if !ok {
				continue
			}
			steps = Steps(p)
		case <-tick:
			steps = steps[1:]
		}
		if len(steps) == 0 {
			i.set(false, false)
			if timer != nil {
				timer.Stop()
				timer = nil
			}
			continue
		}
		if timer != nil {
			timer.Stop() // a fresh timer: no stale tick from the pattern cut short
		}
		i.set(steps[0].Buzzer, steps[0].LED)
		timer = i.clk.NewTimer(steps[0].D)
	}
}

var _ display.Indicator = (*Indicator)(nil)
