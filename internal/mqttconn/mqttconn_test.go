package mqttconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// countingConn counts the reads that reach the network connection.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(b []byte) (int, error) { c.reads++; return c.Conn.Read(b) }

// TestBufferedReadsAPacketInOneCall: paho's byte-at-a-time header reads of
// many small packets reach the connection once, not per byte.
func TestBufferedReadsAPacketInOneCall(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	// 100 PUBACKs (4 bytes each) written at once.
	packets := strings.Repeat("\x40\x02\x00\x01", 100)
	go func() { io.WriteString(b, packets) }()
	cc := &countingConn{Conn: a}
	c := buffered(cc, Central.readBuffer())
	one := make([]byte, 1)
	for i := 0; i < len(packets); i++ {
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
		if one[0] != packets[i] {
			t.Fatalf("byte %d = %#x, want %#x", i, one[0], packets[i])
		}
	}
	// net.Pipe hands over one Write per Read: a single read holds all.
	if cc.reads != 1 {
		t.Fatalf("%d reads of the connection for %d bytes read a byte at a time, want 1", cc.reads, len(packets))
	}
}

func TestDialPlainAndRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	u := &url.URL{Scheme: "tcp", Host: ln.Addr().String()}
	c, err := Open(u, *mqtt.NewClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Dial(ctx, u, nil); err == nil || !strings.Contains(err.Error(), "mqttconn: dial") {
		t.Fatalf("dial of a closed port: %v", err)
	}
	var ne net.Error
	if _, err := Dial(ctx, &url.URL{Scheme: "ws", Host: "x:1"}, nil); err == nil || errors.As(err, &ne) || Handles("ws") {
		t.Fatalf("ws: %v (Handles %v)", err, Handles("ws"))
	}
}

// writeCounter counts the writes that reach the network connection.
type writeCounter struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *writeCounter) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestWritesGathered: what is written while the connection is busy goes
// out together, in order, and Close writes what waits before it closes.
func TestWritesGathered(t *testing.T) {
	a, b := net.Pipe() // a write waits until the other end reads it
	defer b.Close()
	wc := &writeCounter{Conn: a}
	c := newCoalescer(wc, Central.gatherRounds())
	var want bytes.Buffer
	for i := range 100 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes, not the %d written in order", len(got), want.Len())
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	// The first write went out alone while the others waited for it.
	if wc.writes > 2 {
		t.Fatalf("%d writes reached the connection for 100 packets, want at most 2", wc.writes)
	}
}

// TestWritesGatheredWhileAWriterRuns: packets written one by one by a
// goroutine that yields between them, as paho's writer does between the
// packets it encodes, go out a few at a time on central's connection rather
// than each alone: the writer lets it run before it takes the buffer. A
// kiosk's connection writes at once. One processor, so that the two take
// turns as on a busy host.
func TestWritesGatheredWhileAWriterRuns(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 200
	writes := func(r Role) int {
		a, b := net.Pipe()
		defer b.Close()
		go io.Copy(io.Discard, b)
		wc := &writeCounter{Conn: a}
		c := newCoalescer(wc, r.gatherRounds())
		for i := range n {
			if _, err := c.Write([]byte{0x40, 0x02, byte(i >> 8), byte(i)}); err != nil {
				t.Fatal(err)
			}
			runtime.Gosched()
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wc.mu.Lock()
		defer wc.mu.Unlock()
		return wc.writes
	}
	// Each alone would be n writes; gathered, about n/(rounds+1).
	if w := writes(Central); w > n/2 {
		t.Errorf("central: %d writes reached the connection for %d packets, want at most %d", w, n, n/2)
	} else {
		t.Logf("central: %d writes for %d packets", w, n)
	}
	if w := writes(Kiosk); w < n/2 {
		t.Errorf("kiosk: %d writes for %d packets: its writer waited for more, want each written at once", w, n)
	} else {
		t.Logf("kiosk: %d writes for %d packets", w, n)
	}
}

// TestWriteFailsAfterPeerGone: once a write failed every later one fails
// with its error, and Close does not wait for a peer that reads nothing.
func TestWriteFailsAfterPeerGone(t *testing.T) {
	a, b := net.Pipe()
	c := newCoalescer(a, Central.gatherRounds())
	c.flush = 50 * time.Millisecond
	b.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("first write (queued): %v", err)
	}
	var err error
	waitfor.Cond(t, "a write failing after the peer closed", func() bool {
		_, err = c.Write([]byte("y"))
		return err != nil
	})
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a closed peer: %v, want %v", err, io.ErrClosedPipe)
	}
	c.Close()
	if _, err := c.Write([]byte("z")); err == nil {
		t.Fatal("write after Close succeeded")
	}

	// A peer that never reads: Close gives up after flush and closes.
	a2, b2 := net.Pipe()
	defer b2.Close()
	c2 := newCoalescer(a2, Central.gatherRounds())
	c2.flush = 50 * time.Millisecond
	c2.Write([]byte("never read"))
	done := make(chan struct{})
	go func() { c2.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a peer that reads nothing")
	}
}
