package mqttfwd_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
)

// Opts.Subscribe adds topics with their handlers on every session, and
// Publish sends on the session in force (ErrOffline without one).
func TestExtraSubscriptionAndPublish(t *testing.T) {
	br := testbroker.Start(t)
	extra := protocol.Topic(protocol.DefaultPrefix, device, "extra-in")
	got := make(chan string, 4)
	r := newRig(t, br, mqttfwd.Opts{Subscribe: []mqttfwd.Sub{{Topic: extra, Handle: func(p []byte) { got <- string(p) }}}})
	if err := r.f.Publish(protocol.Topic(protocol.DefaultPrefix, device, "extra-out"), []byte("early")); !errors.Is(err, mqttfwd.ErrOffline) {
		t.Fatalf("Publish before Run: %v", err)
	}
	out := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, "extra-out"))
	r.run()
	waitfor.Cond(t, "subscribed", func() bool { return r.f.Subscription().Subscribed })
	publish(t, br, extra, []byte("hello"))
	waitfor.Cond(t, "the extra topic's message", func() bool {
		select {
		case p := <-got:
			if p != "hello" {
				t.Fatalf("handler got %q", p)
			}
			return true
		default:
			return false
		}
	})
	if err := r.f.Publish(protocol.Topic(protocol.DefaultPrefix, device, "extra-out"), []byte("out-1")); err != nil {
		t.Fatal(err)
	}
	waitfor.Cond(t, "the published message", func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return len(out.msgs) == 1 && string(out.msgs[0]) == "out-1"
	})
	// Messages on other topics do not reach the handler.
	publish(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindResult), []byte("not json"))
	select {
	case p := <-got:
		t.Fatalf("handler got %q from another topic", p)
	default:
	}
}

func TestExtraSubscriptionValidated(t *testing.T) {
	br := testbroker.Start(t)
	ob, err := queue.Open(filepath.Join(t.TempDir(), "outbox.db"), queue.Opts{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for _, s := range []mqttfwd.Sub{{Topic: "kiosk/v1/+/cert", Handle: func([]byte) {}}, {Topic: "a/b"}, {Handle: func([]byte) {}}} {
		o := mqttfwd.Opts{Broker: br.URL(), DeviceID: device, Subscribe: []mqttfwd.Sub{s}}
		if _, err := mqttfwd.New(ob, o); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}
