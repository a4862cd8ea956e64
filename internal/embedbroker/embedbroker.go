// Package embedbroker runs the embedded mochi-mqtt broker: the demo's broker,
// and the tests' fallback where no Mosquitto is installed. It listens on the
// loopback address it is given and allows every client, so it is for a
// laptop, never for a fleet.
//
// A Broker can be stopped and started again on the same address, as a
// Mosquitto with persistence is restarted: while stopped nobody can connect
// and every client was cut off, and when it is back the sessions, their
// subscriptions and queued messages and the retained messages are still
// there (kept in memory: they do not survive the process).
//
// One mochi limit stays: a QoS 1 message published at the very moment a
// persistent session is taken over by its reconnecting client can be lost
// (mochi clears the old session's inflight after copying it). The kiosk's
// outbox sends again what was not answered, so the demo loses nothing;
// tests that count single messages across a reconnect use Mosquitto.
package embedbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// listenerID names the one TCP listener.
const listenerID = "tcp"

// ErrStopped is returned when the broker was closed for good.
var ErrStopped = errors.New("embedbroker: closed")

// Broker is one embedded broker.
type Broker struct {
	// Server is the mochi server (its Clients, Topics, Info).
	Server *mqtt.Server
	addr   string
	log    *slog.Logger

	mu        sync.Mutex
	listening bool
	closed    bool
}

// Start starts a broker on addr (host:port) and returns once it accepts
// connections. log may be nil.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := mqtt.New(&mqtt.Options{InlineClient: false, Logger: log})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: listenerID, Address: addr})); err != nil {
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	b := &Broker{Server: s, addr: addr, log: log, listening: true}
	if err := waitListening(addr); err != nil {
		s.Close()
		return nil, err
	}
	return b, nil
}

// Addr is the address the broker listens on (host:port).
func (b *Broker) Addr() string { return b.addr }

// Stop stops listening and cuts every client off, as a broker going down
// does; what the broker holds is kept for Start. Stopping a stopped broker
// does nothing.
func (b *Broker) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrStopped
	}
	if !b.listening {
		return nil
	}
	// The listening socket is closed before any client is cut off. mochi's
	// own order (clients first) lets a client that reconnects at once land
	// in the closing listener's accept queue, where it is accepted and then
	// neither served nor closed: it hangs until its connect timeout.
	b.Server.Listeners.Close(listenerID, func(string) {})
	for _, cl := range b.Server.Clients.GetByListener(listenerID) {
		// The connection is closed under the client, as when a broker
		// process ends: its will is sent, its persistent session kept.
		cl.Stop(errors.New("embedbroker: stopped"))
	}
	b.Server.Listeners.Delete(listenerID)
	b.listening = false
	b.log.Info("embedded broker stopped", "addr", b.addr)
	return nil
}

// Start listens again on the broker's address after Stop and returns once it
// accepts connections. Starting a listening broker does nothing.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrStopped
	}
	if b.listening {
		return nil
	}
	if err := b.Server.AddListener(listeners.NewTCP(listeners.Config{ID: listenerID, Address: b.addr})); err != nil {
		return fmt.Errorf("embedbroker: listen again on %s: %w", b.addr, err)
	}
	b.Server.Listeners.Serve(listenerID, b.Server.EstablishConnection)
	b.listening = true
	if err := waitListening(b.addr); err != nil {
		return err
	}
	b.log.Info("embedded broker started again", "addr", b.addr)
	return nil
}

// Close stops the broker for good.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.listening = false
	return b.Server.Close()
}

// waitListening returns once addr accepts a TCP connection.
func waitListening(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("embedbroker: did not listen on %s", addr)
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
