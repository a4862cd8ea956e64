package mqttfwd

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestResultQueue: Results come out oldest first in takes of at most n; a
// push into a full queue waits until a take makes room, or until done; a
// drained queue lets its array go.
func TestResultQueue(t *testing.T) {
	q := newResultQueue()
	done := make(chan struct{})
	for i := range resultsDepth {
		if !q.push([]byte(fmt.Sprint(i)), done) {
			t.Fatal("push refused below the bound")
		}
	}
	pushed := make(chan bool)
	go func() { pushed <- q.push([]byte("last"), done) }()
	q.mu.Lock()
	n := len(q.items)
	q.mu.Unlock()
	if n != resultsDepth {
		t.Fatalf("%d waiting in a queue bounded to %d", n, resultsDepth)
	}
	got := q.take(nil, 3)
	if len(got) != 3 || string(got[0]) != "0" || string(got[2]) != "2" {
		t.Fatalf("take 3: %q", got)
	}
	if !<-pushed {
		t.Fatal("the waiting push was refused after a take")
	}
	if got := q.take(nil, -1); len(got) != 0 {
		t.Fatalf("take of none: %q", got)
	}
	got = q.take(got[:0], 2*resultsDepth)
	if len(got) != resultsDepth-2 || string(got[len(got)-1]) != "last" {
		t.Fatalf("take of the rest: %d, last %q", len(got), got[len(got)-1])
	}
	if q.items != nil {
		t.Fatal("drained queue kept its array")
	}
	for range resultsDepth {
		q.push(nil, done)
	}
	go func() { pushed <- q.push(nil, done) }()
	close(done)
	if <-pushed {
		t.Fatal("push into a full queue went through after done")
	}
}

// TestResultQueueLetsEveryWaitingPushIn: pushes waiting on a full queue
// (paho's handlers, one goroutine each) all get in once a take makes room
// for them, not one per take.
func TestResultQueueLetsEveryWaitingPushIn(t *testing.T) {
	q := newResultQueue()
	done := make(chan struct{})
	defer close(done)
	for range resultsDepth {
		q.push(nil, done)
	}
	const waiting = 8
	var wg sync.WaitGroup
	for range waiting {
		wg.Go(func() { q.push([]byte("w"), done) })
	}
	for { // until every push waits
		q.mu.Lock()
		n := q.waiting
		q.mu.Unlock()
		if n == waiting {
			break
		}
		runtime.Gosched()
	}
	if got := q.take(nil, resultsDepth); len(got) != resultsDepth {
		t.Fatalf("took %d of %d", len(got), resultsDepth)
	}
	wg.Wait() // hangs (the test times out) if a waiting push is not let in
	if got := q.take(nil, resultsDepth); len(got) != waiting {
		t.Fatalf("%d of %d waiting pushes got in", len(got), waiting)
	}
}
