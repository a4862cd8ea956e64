package device

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/reader"
)

// awaitRig is a rig whose link is up (linked) and whose saved taps wait
// 300 ms for central's Result.
func awaitRig(t *testing.T, linked *atomic.Bool, mut func(*Opts)) *rig {
	t.Helper()
	linked.Store(true)
	return newRig(t, func(o *Opts, _ *queue.Opts) {
		o.AwaitResult = 300 * time.Millisecond
		o.Linked = linked.Load
		if mut != nil {
			mut(o)
		}
	})
}

// tapAsync presents chip and returns the channel its decision comes on.
func (r *rig) tapAsync(chip string) <-chan Decision {
	r.t.Helper()
	uid, err := reader.ParseChip(chip)
	if err != nil {
		r.t.Fatal(err)
	}
	ch, cancel := r.core.Expect(reader.Tap{UID: uid}.Chip())
	r.t.Cleanup(cancel)
	r.events <- reader.Event{Tap: &reader.Tap{UID: uid, At: r.clk.Now()}}
	return ch
}

// queuedID waits for the n-th checkin to be durable and returns its id.
func (r *rig) queuedID(n int) string {
	r.t.Helper()
	var id string
	waitfor.Cond(r.t, "the checkin queued", func() bool {
		items, err := r.ob.Pending(context.Background(), 0, 100)
		if err != nil || len(items) < n {
			return false
		}
		id = items[n-1].ID
		return true
	})
	return id
}

func (r *rig) seen() ([]display.Kind, []display.Pattern) {
	r.disp.mu.Lock()
	defer r.disp.mu.Unlock()
	var kinds []display.Kind
	for _, s := range r.disp.screens {
		kinds = append(kinds, s.Kind)
	}
	return kinds, slices.Clone(r.disp.signals)
}

func recv(t *testing.T, ch <-chan Decision) Decision {
	t.Helper()
	var d Decision
	waitfor.Cond(t, "the decision", func() bool {
		select {
		case d = <-ch:
			return true
		default:
			return false
		}
	})
	return d
}

// recvAdvancing waits for the decision on ch, advancing the rig's clock by
// step each time it has not come yet (a wait that runs out on the clock).
func (r *rig) recvAdvancing(t *testing.T, ch <-chan Decision, what string, step time.Duration) Decision {
	t.Helper()
	var d Decision
	waitfor.Cond(t, what, func() bool {
		select {
		case d = <-ch:
			return true
		default:
			r.clk.Advance(step)
			return false
		}
	})
	return d
}

func maximumReached(id string) protocol.Result {
	return protocol.Result{V: 1, ID: id, Status: protocol.StatusMaximumReached,
		EndUserMessage: map[string]string{"nl": "Punt al gespaard: max. 1 per activiteit"}}
}

// TestAwaitedRefusalIsTheOnlyAnswer: online, central's refusal of a tap
// the kiosk queued is the first and only answer: no "+1 punt gespaard", no
// saved beep, and the control socket's decision says what was shown.
func TestAwaitedRefusalIsTheOnlyAnswer(t *testing.T) {
	var linked atomic.Bool
	r := awaitRig(t, &linked, nil)
	ch := r.tapAsync("042F51B2712380")
	id := r.queuedID(1)
	waitfor.Cond(t, "the uplink kicked", func() bool { r.up.mu.Lock(); defer r.up.mu.Unlock(); return r.up.kick == 1 })
	select {
	case d := <-ch:
		t.Fatalf("decided before central answered: %+v", d)
	default:
	}
	r.core.OnResult(maximumReached(id))
	d := recv(t, ch)
	if d.Outcome != OutcomeSaved || d.ID != id || d.Result != protocol.StatusMaximumReached ||
		d.Screen.Kind != display.AlreadySaved || d.Screen.Message == "" {
		t.Fatalf("decision %+v", d)
	}
	kinds, signals := r.seen()
	if slices.Contains(kinds, display.Saved) {
		t.Fatalf("the saved screen was shown: %v", kinds)
	}
	if !slices.Equal(signals, []display.Pattern{display.SignalAlreadySaved}) {
		t.Fatalf("signals %v, want the already-saved one only", signals)
	}
	// The same card again is the same answer.
	r.clk.Advance(time.Second)
	if again := r.tap("042F51B2712380"); again.ID != id || again.Screen.Kind != display.AlreadySaved {
		t.Fatalf("re-tap %+v", again)
	}
}

// TestAwaitRunsOutShowsSaved: without a Result within the wait the tap shows
// saved with its beep, and the total when the Result comes. The next tap
// does not wait (central let the last wait run out) until central answers
// again.
func TestAwaitRunsOutShowsSaved(t *testing.T) {
	var linked atomic.Bool
	r := awaitRig(t, &linked, nil)
	t0 := r.clk.Now()
	ch := r.tapAsync("042F51B2712380")
	id := r.queuedID(1)
	d := r.recvAdvancing(t, ch, "saved after the wait", 50*time.Millisecond)
	if waited := r.clk.Now().Sub(t0); waited < 300*time.Millisecond {
		t.Fatalf("decided after %s, before the wait ran out", waited)
	}
	if d.Screen.Kind != display.Saved || d.Result != "" || d.ID != id {
		t.Fatalf("decision %+v", d)
	}
	if _, signals := r.seen(); !slices.Equal(signals, []display.Pattern{display.SignalSaved}) {
		t.Fatalf("signals %v", signals)
	}
	// Central has not answered: the next passholder is not kept waiting.
	d2 := r.tap("04A1B2C3D4E5F6")
	if d2.Screen.Kind != display.Saved || d2.Result != "" {
		t.Fatalf("second tap %+v", d2)
	}
	// Central answers the first tap late, the second on time: the total
	// shows, and the next tap waits again.
	r.core.OnResult(protocol.Result{V: 1, ID: d2.ID, Status: protocol.StatusSaved, NewPoints: 1, TotalPoints: 7})
	waitfor.Cond(t, "the total", func() bool { s := r.disp.last(); return s.HasTotal && s.Total == 7 })
	ch3 := r.tapAsync("04A1B2C3D4E5F7")
	id3 := r.queuedID(3)
	r.core.OnResult(protocol.Result{V: 1, ID: id3, Status: protocol.StatusSaved, NewPoints: 1, TotalPoints: 8})
	if d3 := recv(t, ch3); d3.Result != protocol.StatusSaved || !d3.Screen.HasTotal || d3.Screen.Total != 8 {
		t.Fatalf("third tap %+v", d3)
	}
}

// TestOfflineDoesNotWait: with the link down, or tap.await_result 0, saved
// shows at once, as before.
func TestOfflineDoesNotWait(t *testing.T) {
	var linked atomic.Bool
	r := awaitRig(t, &linked, nil)
	linked.Store(false)
	if d := r.tap("042F51B2712380"); d.Screen.Kind != display.Saved || d.Result != "" {
		t.Fatalf("offline tap %+v", d)
	}
	r0 := awaitRig(t, &linked, func(o *Opts) { o.AwaitResult = 0 })
	if d := r0.tap("042F51B2712380"); d.Screen.Kind != display.Saved || d.Result != "" {
		t.Fatalf("await_result 0: %+v", d)
	}
}

// TestNextTapEndsTheWait: another card while a tap waits gives the waiting
// one saved at once; the new one waits in turn.
func TestNextTapEndsTheWait(t *testing.T) {
	var linked atomic.Bool
	r := awaitRig(t, &linked, nil)
	ch1 := r.tapAsync("042F51B2712380")
	r.queuedID(1)
	ch2 := r.tapAsync("04A1B2C3D4E5F6")
	if d := recv(t, ch1); d.Screen.Kind != display.Saved || d.Result != "" {
		t.Fatalf("first %+v", d)
	}
	id2 := r.queuedID(2)
	r.core.OnResult(protocol.Result{V: 1, ID: id2, Status: protocol.StatusCardBlocked,
		EndUserMessage: map[string]string{"nl": "Kaart geblokkeerd. Meld je aan de balie."}})
	if d := recv(t, ch2); d.Screen.Kind != display.Blocked || d.Result != protocol.StatusCardBlocked {
		t.Fatalf("second %+v", d)
	}
	if _, signals := r.seen(); !slices.Equal(signals, []display.Pattern{display.SignalSaved, display.SignalRefused}) {
		t.Fatalf("signals %v", signals)
	}
}

// TestLongMessagePages: a message the output splits into pages is shown
// page by page, each held for tap.hold, before idle returns.
func TestLongMessagePages(t *testing.T) {
	var linked atomic.Bool
	r := awaitRig(t, &linked, func(o *Opts) {
		o.Pages = func(s display.Screen) int { return 3 }
	})
	ch := r.tapAsync("042F51B2712380")
	r.core.OnResult(maximumReached(r.queuedID(1)))
	recv(t, ch)
	for page := 1; page < 3; page++ {
		waitfor.Cond(t, "the next page", func() bool {
			r.clk.Advance(500 * time.Millisecond)
			s := r.disp.last()
			return s.Kind == display.AlreadySaved && s.Page == page
		})
	}
	waitfor.Cond(t, "idle", func() bool { r.clk.Advance(500 * time.Millisecond); return r.disp.last().Kind == display.Idle })
	r.disp.mu.Lock()
	defer r.disp.mu.Unlock()
	var pages []int
	for _, s := range r.disp.screens {
		if s.Kind == display.AlreadySaved {
			pages = append(pages, s.Page)
		}
	}
	if !slices.Equal(pages, []int{0, 1, 2}) {
		t.Fatalf("pages shown %v", pages)
	}
}

// TestAwaitCountsFromTheTap: the wait ends tap.await_result after the tap,
// however long the queue took: a tap read 250 ms ago waits 50 ms more, one
// read 400 ms ago not at all.
func TestAwaitCountsFromTheTap(t *testing.T) {
	var linked atomic.Bool
	r := awaitRig(t, &linked, nil)
	present := func(chip string, ago time.Duration) <-chan Decision {
		uid, _ := reader.ParseChip(chip)
		ch, cancel := r.core.Expect(chip)
		t.Cleanup(cancel)
		r.events <- reader.Event{Tap: &reader.Tap{UID: uid, At: r.clk.Now().Add(-ago)}}
		return ch
	}
	ch := present("042F51B2712380", 250*time.Millisecond)
	r.queuedID(1)
	t0 := r.clk.Now()
	d := r.recvAdvancing(t, ch, "saved after the rest of the wait", 10*time.Millisecond)
	if waited := r.clk.Now().Sub(t0); waited >= 300*time.Millisecond || d.Screen.Kind != display.Saved {
		t.Fatalf("waited %s more (want about 50ms): %+v", waited, d)
	}
	// Central answered nothing: the next tap would not wait anyway; let it
	// answer, then a tap read too long ago does not wait.
	r.core.OnResult(protocol.Result{V: 1, ID: d.ID, Status: protocol.StatusSaved, TotalPoints: 1})
	waitfor.Cond(t, "the total", func() bool { return r.disp.last().HasTotal })
	if d := recv(t, present("04A1B2C3D4E5F6", 400*time.Millisecond)); d.Screen.Kind != display.Saved || d.Result != "" {
		t.Fatalf("late tap %+v", d)
	}
}
