package embedbroker

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

func connect(t *testing.T, addr, id string, clean bool, lost *atomic.Int32) paho.Client {
	t.Helper()
	return connectWith(t, addr, id, clean, lost, nil)
}

// connectWith connects without reconnecting by itself; onMsg, when set,
// receives every message (also those a persistent session held).
func connectWith(t *testing.T, addr, id string, clean bool, lost *atomic.Int32, onMsg paho.MessageHandler) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetDefaultPublishHandler(onMsg)
	if lost != nil {
		o.SetConnectionLostHandler(func(paho.Client, error) { lost.Add(1) })
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

// TestStopStartKeepsSessions: a stopped broker refuses connections and has
// cut its clients off; started again on the same address, a persistent
// session gets what was published for it, and retained messages are kept,
// as with Mosquitto restarted with persistence.
func TestStopStartKeepsSessions(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var lost atomic.Int32
	got := make(chan string, 10)
	onMsg := func(_ paho.Client, m paho.Message) { got <- m.Topic() + "=" + string(m.Payload()) }
	sub := connectWith(t, addr, "sub", false, &lost, onMsg)
	if tok := sub.Subscribe("t/#", 1, onMsg); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := connect(t, addr, "pub", true, nil)
	if tok := pub.Publish("r/kept", 1, true, "yes"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub.Disconnect(50)

	for round := 1; round <= 2; round++ {
		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		waitfor.Cond(t, "the subscriber cut off", func() bool { return lost.Load() == int32(round) })
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatal("a stopped broker accepted a connection")
		}
		if err := b.Start(); err != nil {
			t.Fatalf("start again: %v", err)
		}
		// Published while the subscriber is away: its session holds it,
		// and hands it over when the subscriber comes back (a reconnect
		// racing the publish is mochi's own affair: it can lose the
		// message in the instant of the session's take-over).
		pub := connect(t, addr, "pub", true, nil)
		if tok := pub.Publish("t/x", 1, false, "after-restart"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		pub.Disconnect(50)
		sub.Disconnect(0)
		sub = connectWith(t, addr, "sub", false, &lost, onMsg)
		select {
		case m := <-got:
			if m != "t/x=after-restart" {
				t.Fatalf("got %q", m)
			}
		case <-time.After(waitfor.Timeout):
			t.Fatalf("round %d: the persistent session got nothing after the restart", round)
		}
	}

	kept := make(chan string, 1)
	late := connect(t, addr, "late", true, nil)
	late.Subscribe("r/kept", 1, func(_ paho.Client, m paho.Message) { kept <- string(m.Payload()) })
	select {
	case v := <-kept:
		if v != "yes" {
			t.Fatalf("retained %q", v)
		}
	case <-time.After(waitfor.Timeout):
		t.Fatal("the retained message did not survive the restarts")
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != ErrStopped {
		t.Fatalf("start after Close: %v, want ErrStopped", err)
	}
}
