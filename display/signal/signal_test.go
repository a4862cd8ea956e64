package signal

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
)

// wire is a fake line that records each change with the fake time.
type wire struct {
	name  string
	clk   *clock.Fake
	log   *eventLog
	fail  bool
	block chan struct{}
}

type event struct {
	at   time.Duration
	line string
	v    int
}

type eventLog struct {
	mu     sync.Mutex
	start  time.Time
	events []event
	level  map[string]int
}

func (w *wire) SetValue(v int) error {
	if w.block != nil {
		<-w.block
	}
	if w.fail {
		return errors.New("line gone")
	}
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	if w.log.level[w.name] != v {
		w.log.events = append(w.log.events, event{w.clk.Now().Sub(w.log.start), w.name, v})
	}
	w.log.level[w.name] = v
	return nil
}

func (l *eventLog) take() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.events
	l.events = nil
	return e
}

func setup(t *testing.T) (*Indicator, *clock.Fake, *eventLog, *wire, *wire) {
	t.Helper()
	start := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	log := &eventLog{start: start, level: map[string]int{}}
	bz, led := &wire{name: "buzzer", clk: clk, log: log}, &wire{name: "led", clk: clk, log: log}
	ind := New(bz, led, clk)
	t.Cleanup(func() { ind.Halt() })
	return ind, clk, log, bz, led
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// play runs the clock through a pattern step by step and returns the line
// changes it made.
func play(t *testing.T, clk *clock.Fake, log *eventLog, total time.Duration) []event {
	t.Helper()
	var elapsed time.Duration
	for elapsed < total {
		waitFor(t, func() bool { return clk.Timers() == 1 }, "the step timer")
		step := 10 * time.Millisecond
		clk.Advance(step)
		elapsed += step
	}
	waitFor(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return clk.Timers() == 0 && log.level["buzzer"] == 0 && log.level["led"] == 0
	}, "the end of the pattern")
	return log.take()
}

func TestSaved(t *testing.T) {
	ind, clk, log, _, _ := setup(t)
	ind.Signal(display.SignalSaved)
	got := play(t, clk, log, 1500*time.Millisecond)
	want := []event{{0, "buzzer", 1}, {0, "led", 1}, {120 * ms, "buzzer", 0}, {1500 * ms, "led", 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("saved:\n got %v\nwant %v", got, want)
	}
}

func TestPatternsDistinct(t *testing.T) {
	patterns := []display.Pattern{display.SignalSaved, display.SignalAlreadySaved, display.SignalRefused, display.SignalFault, display.SignalIdentify}
	seen := map[string]display.Pattern{}
	for _, p := range patterns {
		s := Steps(p)
		if len(s) == 0 {
			t.Fatalf("pattern %d has no steps", p)
		}
		// By ear: the buzzer's on/off rhythm alone must differ.
		var ear []time.Duration
		var total time.Duration
		for _, st := range s {
			total += st.D
			if n := len(ear); n > 0 && (n%2 == 1) == st.Buzzer {
				ear[n-1] += st.D
			} else {
				if n == 0 && !st.Buzzer {
					ear = append(ear, 0)
				}
				ear = append(ear, st.D)
			}
		}
		key := fmt.Sprint(ear)
		if q, dup := seen[key]; dup {
			t.Errorf("patterns %d and %d sound the same", p, q)
		}
		seen[key] = p
		if p != display.SignalIdentify && total > 2*time.Second {
			t.Errorf("pattern %d lasts %v: a tap's signal should be over before the next tap", p, total)
		}
		if p == display.SignalIdentify && total != 10*time.Second {
			t.Errorf("identify lasts %v, want 10s", total)
		}
	}
}

// TestSupersede: a new signal cuts the playing one short.
func TestSupersede(t *testing.T) {
	ind, clk, log, _, _ := setup(t)
	ind.Signal(display.SignalIdentify)
	waitFor(t, func() bool { return clk.Timers() == 1 }, "identify started")
	clk.Advance(2 * time.Second)
	waitFor(t, func() bool { return clk.Timers() == 1 }, "identify's next step")
	log.take()
	ind.Signal(display.SignalSaved)
	waitFor(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.level["buzzer"] == 1
	}, "saved's beep")
	got := play(t, clk, log, 1500*time.Millisecond)
	// Saved starts at once (buzzer on) and everything is off 1.5 s later,
	// 8 s before identify would have ended.
	if len(got) == 0 || got[0] != (event{2 * time.Second, "buzzer", 1}) {
		t.Fatalf("saved did not start at once: %v", got)
	}
	last := got[len(got)-1]
	if last.at != 3500*ms || last.v != 0 {
		t.Errorf("last change %v, want everything off at 3.5 s", last)
	}
	clk.Advance(10 * time.Second)
	if e := log.take(); len(e) != 0 {
		t.Errorf("identify went on after being superseded: %v", e)
	}
}

// TestSignalNeverWaits: with a line stuck, Signal still returns at once.
func TestSignalNeverWaits(t *testing.T) {
	clk := clock.NewFake(time.Now())
	log := &eventLog{level: map[string]int{}}
	block := make(chan struct{})
	bz := &wire{name: "buzzer", clk: clk, log: log}
	ind := New(bz, nil, clk)
	bz.block = block
	done := make(chan struct{})
	go func() {
		for range 100 {
			ind.Signal(display.SignalFault)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Signal waited for a stuck line")
	}
	close(block)
	if err := ind.Halt(); err != nil {
		t.Fatal(err)
	}
}

func TestLineError(t *testing.T) {
	ind, clk, _, bz, _ := setup(t)
	bz.fail = true
	ind.Signal(display.SignalSaved)
	waitFor(t, func() bool { return ind.Err() != nil }, "the line error")
	bz.fail = false
	clk.Advance(2 * time.Second)
	waitFor(t, func() bool { return ind.Err() == nil }, "the error to clear")
}

func TestHaltLeavesLinesLow(t *testing.T) {
	ind, clk, log, _, _ := setup(t)
	ind.Signal(display.SignalIdentify)
	waitFor(t, func() bool { return clk.Timers() == 1 }, "identify started")
	if err := ind.Halt(); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.level["buzzer"] != 0 || log.level["led"] != 0 {
		t.Errorf("lines after Halt: %v", log.level)
	}
}
