// Package embedbroker runs the embedded mochi-mqtt broker: the demo's broker,
// and the tests' fallback where no Mosquitto is installed. It listens on the
// loopback address it is given and allows every client, so it is for a
// laptop, never for a fleet.
package embedbroker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Start starts a broker on addr (host:port) and returns once it accepts
// connections. log may be nil.
func Start(addr string, log *slog.Logger) (*mqtt.Server, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := mqtt.New(&mqtt.Options{InlineClient: false, Logger: log})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-errc:
			return nil, fmt.Errorf("embedbroker: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.Close()
	return nil, fmt.Errorf("embedbroker: did not listen on %s", addr)
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("embedbroker: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
