package mqttconn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
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
	c := Buffered(cc)
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
