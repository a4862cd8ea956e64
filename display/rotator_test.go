package display

import (
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
)

// recorder is a Display that passes each shown screen to a channel.
type recorder struct {
	c      chan Screen
	halted bool
}

func (r *recorder) Show(s Screen)  { r.c <- s }
func (r *recorder) Halt() error    { r.halted = true; return nil }
func (r *recorder) String() string { return "recorder" }

func next(t *testing.T, c chan Screen) Screen {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no screen shown")
		return Screen{}
	}
}

func none(t *testing.T, c chan Screen) {
	t.Helper()
	select {
	case s := <-c:
		t.Fatalf("unexpected screen %v", s.Kind)
	case <-time.After(20 * time.Millisecond):
	}
}

// waitTimers waits until the rotator's goroutine has armed n timers.
func waitTimers(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Timers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers armed, want %d", clk.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRotatorAlternates(t *testing.T) {
	clk := clock.NewFake(time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC))
	rec := &recorder{c: make(chan Screen, 10)}
	r := NewRotator(rec, clk, 8*time.Second)
	idle := Screen{Kind: Idle, Lang: "fr", EventTitle: "Yoga", Code: "C0DE"}
	r.Show(idle)
	if s := next(t, rec.c); s != idle {
		t.Fatalf("first %+v", s)
	}
	waitTimers(t, clk, 1)
	clk.Advance(7 * time.Second)
	none(t, rec.c)
	clk.Advance(time.Second)
	want := Screen{Kind: Spaarcode, Lang: "fr", EventTitle: "Yoga", Code: "C0DE"}
	if s := next(t, rec.c); s != want {
		t.Fatalf("after 8 s %+v, want %+v", s, want)
	}
	waitTimers(t, clk, 1)
	clk.Advance(8 * time.Second)
	if s := next(t, rec.c); s != idle {
		t.Fatalf("after 16 s %+v", s)
	}

	// A tap's screen stops the alternation until idle comes back.
	waitTimers(t, clk, 1)
	saved := Screen{Kind: Saved, Points: 1}
	r.Show(saved)
	if s := next(t, rec.c); s != saved {
		t.Fatalf("tap screen %+v", s)
	}
	waitTimers(t, clk, 0)
	clk.Advance(time.Minute)
	none(t, rec.c)

	// Idle without a code does not alternate.
	r.Show(Screen{Kind: Idle, EventTitle: "Yoga"})
	next(t, rec.c)
	clk.Advance(time.Minute)
	none(t, rec.c)
	if clk.Timers() != 0 {
		t.Fatal("timer armed for idle without code")
	}

	if err := r.Halt(); err != nil || !rec.halted {
		t.Fatalf("Halt = %v, inner halted %v", err, rec.halted)
	}
}

func TestRotatorDisabled(t *testing.T) {
	clk := clock.NewFake(time.Now())
	rec := &recorder{c: make(chan Screen, 10)}
	r := NewRotator(rec, clk, 0)
	defer r.Halt()
	r.Show(Screen{Kind: Idle, Code: "X"})
	next(t, rec.c)
	clk.Advance(time.Hour)
	none(t, rec.c)
}
