// Package mqttconn opens the network connection of a paho client with its
// reads buffered and its writes gathered. Paho reads each packet's fixed
// header a byte at a time from the connection it is given, and writes each
// packet with a call of its own: unbuffered, a packet costs three or more
// system calls to read and one to write, and at central's thousands of
// packets a second those calls were a third of the ingest's processor
// time.
package mqttconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Role says whose connection it is, which sets how it reads and writes.
type Role int

const (
	// Central (Open) reads through 32 KiB, so that a burst of checkins is
	// read in a few calls, and its writer gathers a batch's Results and
	// PUBACKs (coalescer.gather).
	Central Role = iota
	// Kiosk reads through 4 KiB (its buffer is a fleet's memory times
	// thousands) and writes at once: a kiosk sends a packet at a time, so
	// there is nothing to gather, and its write does not wait a turn of the
	// scheduler (in a fleet simulator's shard, thousands of kiosks).
	Kiosk
)

// readBuffer is r's read buffer size.
func (r Role) readBuffer() int {
	if r == Kiosk {
		return 4 << 10
	}
	return 32 << 10
}

// gatherRounds is how many scheduler rounds r's writer may yield to let
// more packets in before it writes.
func (r Role) gatherRounds() int {
	if r == Kiosk {
		return 0
	}
	return 4
}

// Handles reports whether Dial opens connections of scheme (paho's own
// dialer then stays for the others: ws, wss).
func Handles(scheme string) bool { return isTLS(scheme) || scheme == "tcp" || scheme == "mqtt" }

// isTLS: the schemes paho reads as TLS.
func isTLS(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "tcps":
		return true
	}
	return false
}

// Open is a paho OpenConnectionFunc (ClientOptions.SetCustomOpenConnectionFn):
// Dial within the client's ConnectTimeout, with its TLS configuration, and
// Wrap.
func Open(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second // paho's default dialer's
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := Dial(ctx, u, o.TLSConfig)
	if err != nil {
		return nil, err
	}
	return Wrap(conn, Central), nil
}

// Dial connects to the broker at u: TLS for the schemes paho reads as TLS
// (ssl, tls, mqtts, tcps), plain TCP for tcp and mqtt. cfg nil is TLS's
// defaults. The connection is the network's own: Wrap it for paho.
func Dial(ctx context.Context, u *url.URL, cfg *tls.Config) (net.Conn, error) {
	if !Handles(u.Scheme) {
		return nil, fmt.Errorf("mqttconn: scheme %q of %s: not tcp, mqtt, ssl, tls, mqtts or tcps", u.Scheme, u.Redacted())
	}
	var conn net.Conn
	var err error
	if isTLS(u.Scheme) {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		d := tls.Dialer{Config: cfg}
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, fmt.Errorf("mqttconn: dial %s: %w", u.Host, err)
	}
	return conn, nil
}

// Wrap is conn with its reads buffered and its writes gathered (write.go),
// as r needs them. Only one goroutine may read from it (paho has one). Its
// Close writes what waits first; closing conn itself cuts the connection at
// once.
func Wrap(conn net.Conn, r Role) net.Conn {
	return buffered(newCoalescer(conn, r.gatherRounds()), r.readBuffer())
}

// buffered is conn with its reads buffered in readBuffer bytes.
func buffered(conn net.Conn, readBuffer int) net.Conn {
	return &bufConn{Conn: conn, r: bufio.NewReaderSize(conn, readBuffer)}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }
