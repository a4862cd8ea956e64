package mqttfwd

import "sync"

// resultQueue holds the Results received and not yet applied to the outbox,
// between paho's message handlers and the applier. It is bounded as a
// channel of resultsDepth would be (push waits while it is full, which
// holds back paho's acknowledgements and so the broker), but its memory
// follows what waits: a slice that grows with a burst and is let go when
// drained. A channel of that depth held 96 KiB per kiosk from its start,
// every slot scanned by the garbage collector; in a simulated fleet of
// 5 000 that was half the heap, and the collector's pauses its latency
// tail.
type resultQueue struct {
	mu    sync.Mutex
	items [][]byte
	ready chan struct{} // a token while items may be non-empty
	room  chan struct{} // a token when take made room
	// waiting counts the pushes waiting for room (the tests wait on it).
	waiting int
}

func newResultQueue() *resultQueue {
	return &resultQueue{ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// push adds p, waiting while resultsDepth wait already; false when done
// closed first. Pushes come from many goroutines (paho runs each message's
// handler on its own when order does not matter), so a push let in passes
// the room on: take leaves one token however many it freed.
func (q *resultQueue) push(p []byte, done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if len(q.items) < resultsDepth {
			q.items = append(q.items, p)
			more := len(q.items) < resultsDepth
			q.mu.Unlock()
			signal(q.ready)
			if more {
				signal(q.room)
			}
			return true
		}
		q.waiting++
		q.mu.Unlock()
		var ok bool
		select {
		case <-q.room:
			ok = true
		case <-done:
		}
		q.mu.Lock()
		q.waiting--
		q.mu.Unlock()
		if !ok {
			return false
		}
	}
}

// take appends to batch at most n waiting Results, oldest first.
func (q *resultQueue) take(batch [][]byte, n int) [][]byte {
	q.mu.Lock()
	n = max(0, min(n, len(q.items)))
	batch = append(batch, q.items[:n]...)
	clear(q.items[:n])
	q.items = q.items[n:]
	if len(q.items) == 0 {
		q.items = nil // let a burst's array go
	} else {
		signal(q.ready)
	}
	q.mu.Unlock()
	if n > 0 {
		signal(q.room)
	}
	return batch
}

// signal leaves a token in c unless one is there: it never blocks.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
