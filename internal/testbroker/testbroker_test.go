package testbroker

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// TestBrokerRestarts: whichever broker a test gets, Stop takes it away and
// Start brings it back on the same port, with a persistent session's
// messages kept; KIOSK_TEST_BROKER=embedded gives the embedded broker even
// where Mosquitto is installed.
func TestBrokerRestarts(t *testing.T) {
	for _, kind := range []string{"embedded", "mosquitto"} {
		t.Run(kind, func(t *testing.T) {
			if kind == "mosquitto" {
				RequireMosquitto(t, "the Mosquitto half of the restart test")
			}
			t.Setenv(Env, kind)
			b := Start(t)
			if b.Kind != kind {
				t.Fatalf("kind %q, want %q", b.Kind, kind)
			}
			got := make(chan string, 4)
			handler := func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }
			// The subscriber does not reconnect by itself: the message is
			// published while its session is away, so what is checked is
			// that the restarted broker kept the session and queued the
			// message, not how a reconnect races the publish.
			subOpts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("sub").SetCleanSession(false).
				SetAutoReconnect(false).SetDefaultPublishHandler(handler)
			sub := paho.NewClient(subOpts)
			if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			if tok := sub.Subscribe("t", 1, handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			b.Stop()
			if c, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
				c.Close()
				t.Fatal("the stopped broker accepts connections")
			}
			waitfor.Cond(t, "the subscriber cut off by Stop", func() bool { return !sub.IsConnectionOpen() })
			sub.Disconnect(0)
			b.Start()
			pub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("pub"))
			if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			defer pub.Disconnect(50)
			if tok := pub.Publish("t", 1, false, "back"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			sub = paho.NewClient(subOpts)
			if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			defer sub.Disconnect(50)
			select {
			case m := <-got:
				if m != "back" {
					t.Fatalf("got %q", m)
				}
			case <-time.After(waitfor.Timeout):
				t.Fatal("nothing reached the persistent session after the restart")
			}
		})
	}
}

// fakeTB records how RequireMosquitto and StartOpts end a test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                  {}
func (f *fakeTB) Log(...any)               {}
func (f *fakeTB) Skipf(s string, a ...any) { f.skipped = s; runtime.Goexit() }
func (f *fakeTB) Fatal(a ...any)           { f.failed = "fatal"; runtime.Goexit() }
func (f *fakeTB) Fatalf(s string, a ...any) {
	f.failed = s
	runtime.Goexit()
}

func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

// TestWithoutMosquitto: KIOSK_TEST_BROKER=embedded stands for a machine
// without Mosquitto: tests that need its features skip, saying why, and a
// configuration only Mosquitto understands fails rather than silently
// running on the embedded broker.
func TestWithoutMosquitto(t *testing.T) {
	t.Setenv(Env, "embedded")
	if Mosquitto() != "" {
		t.Fatal("KIOSK_TEST_BROKER=embedded still reports a Mosquitto")
	}
	f := &fakeTB{TB: t}
	inGoroutine(func() { RequireMosquitto(f, "TLS and ACLs") })
	if f.failed != "" || !strings.Contains(f.skipped, "mosquitto not installed") {
		t.Fatalf("RequireMosquitto: skipped %q, failed %q", f.skipped, f.failed)
	}
	f = &fakeTB{TB: t}
	inGoroutine(func() { StartOpts(f, Opts{Extra: "acl_file x\n"}) })
	if f.failed == "" {
		t.Fatal("a Mosquitto-only configuration started on the embedded broker")
	}
	if b := StartOpts(t, Opts{Tuning: "max_connections -1\n"}); b.Kind != "embedded" {
		t.Fatalf("kind %q", b.Kind)
	}
}
