package mqttconn

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// coalescer gathers the writes made while the connection is busy writing
// into one. Paho writes each packet with a system call of its own, and an
// ingest answers a batch at once: a Result and a PUBACK per checkin, two
// calls each into the kernel's TCP stack. Here one goroutine writes, and
// what paho writes meanwhile waits in a buffer and goes out with its next
// call: nothing waits when the connection is idle, and a burst goes out in
// a few calls. Order is kept (one buffer, one writer).
type coalescer struct {
	net.Conn
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	spare   []byte
	err     error // the first failed write: every later Write returns it
	closing bool
	done    chan struct{} // the writer goroutine has ended
	flush   time.Duration // closeFlush (tests shorten it)
	rounds  int           // gather's bound on its scheduler rounds
}

// maxPending bounds what waits: past it Write waits for the writer, so a
// stalled connection holds paho back (and its write timeout) as before.
const maxPending = 256 << 10

// gatherBytes: the writer does not yield once this much waits.
const gatherBytes = 16 << 10

// closeFlush bounds how long Close waits for what waits to go out.
const closeFlush = 2 * time.Second

// newCoalescer starts conn's writer; it yields at most rounds times before
// it writes (gather), 0 for never.
func newCoalescer(conn net.Conn, rounds int) *coalescer {
	c := &coalescer{Conn: conn, done: make(chan struct{}), flush: closeFlush, rounds: rounds}
	c.cond.L = &c.mu
	go c.writer()
	return c
}

func (c *coalescer) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closing && len(c.buf) > maxPending {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, b...)
	c.cond.Broadcast()
	return len(b), nil
}

func (c *coalescer) writer() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && !c.closing {
			c.cond.Wait()
		}
		if len(c.buf) == 0 { // closing, all written
			return
		}
		c.gather()
		data := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(data)
		c.mu.Lock()
		c.spare = data[:0]
		if err != nil {
			if c.err == nil {
				c.err = err
			}
			c.buf = c.buf[:0] // cannot go out any more
		}
		c.cond.Broadcast() // writers waiting for room
	}
}

// gather lets the goroutines that are writing run before the writer takes
// the buffer: a scheduler round, again while the buffer grows, at most
// c.rounds and up to gatherBytes. On a busy host the writer is woken by
// paho's first packet of a batch and would otherwise send it alone while the
// others are still being encoded. The cost is a write's wait behind what
// else is runnable, up to c.rounds times: nothing on an idle process, a
// turn of the run queue in a busy one. That is why a kiosk's connection
// does not gather (Kiosk). Called with c.mu held.
func (c *coalescer) gather() {
	for i, n := 0, -1; i < c.rounds && n < len(c.buf) && len(c.buf) < gatherBytes && !c.closing; i++ {
		n = len(c.buf)
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
}

// Close writes what waits (for at most closeFlush: paho's DISCONNECT is
// among it) and closes the connection.
func (c *coalescer) Close() error {
	c.mu.Lock()
	c.closing = true
	c.cond.Broadcast()
	c.mu.Unlock()
	t := time.NewTimer(c.flush)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C: // a stalled peer: closing ends the write
	}
	return c.Conn.Close()
}
