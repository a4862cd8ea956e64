package mqttfwd_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd/fwdbench"
)

const device = "kiosk-test-01"

// waitFor polls cond (real time) until it holds or 15 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type rig struct {
	t       *testing.T
	br      *testbroker.Broker
	ob      *queue.Outbox
	f       *mqttfwd.Forwarder
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	results map[string]protocol.Result // known Results applied
	unknown int
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func newRig(t *testing.T, br *testbroker.Broker, o mqttfwd.Opts) *rig {
	t.Helper()
	ob, err := queue.Open(filepath.Join(t.TempDir(), "outbox.db"), queue.Opts{Clock: o.Clock, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	r := &rig{t: t, br: br, ob: ob, results: map[string]protocol.Result{}}
	o.Broker = br.URL()
	o.DeviceID = device
	o.Logger = logger(t)
	o.OnResult = func(res protocol.Result, known bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if known {
			r.results[res.ID] = res
		} else {
			r.unknown++
		}
	}
	o.Status = func() protocol.Status { return protocol.Status{Version: "test", Reader: "ok", Display: "ok"} }
	f, err := mqttfwd.New(ob, o)
	if err != nil {
		t.Fatal(err)
	}
	f.SetBackoff(20*time.Millisecond, 200*time.Millisecond)
	r.f = f
	return r
}

func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	go func() { r.done <- r.f.Run(ctx) }()
	r.t.Cleanup(r.stop)
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Error("Run did not return within 10s of cancel")
	}
}

func (r *rig) enqueue(n int) []queue.Item {
	r.t.Helper()
	var items []queue.Item
	for i := range n {
		chip := fmt.Sprintf("04%012X", len(items)+i+int(time.Now().UnixNano()%1000000)*100)
		it, err := r.ob.Enqueue(context.Background(), queue.Entry{Chip: chip, EventID: "evt-1", Bucket: "DAY",
			Build: func(id string, seq int64) ([]byte, error) {
				return protocol.Checkin{ID: id, DeviceID: device, Seq: seq, ChipNumber: chip, EventID: "evt-1",
					CounterID: "c", TappedAt: "2026-11-24T09:12:33.481Z", BootID: "b", UptimeMs: 1}.Encode(), nil
			}})
		if err != nil {
			r.t.Fatal(err)
		}
		items = append(items, it)
		r.f.Kick()
	}
	return items
}

func (r *rig) pending() int {
	st, err := r.ob.Stats(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return st.Pending
}

func (r *rig) nresults() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.results)
}

func central(t *testing.T, br *testbroker.Broker) *fwdbench.Central {
	t.Helper()
	ce, err := fwdbench.StartCentral(br.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ce.Close)
	return ce
}

// watcher subscribes to topic and collects payloads.
type watcher struct {
	mu   sync.Mutex
	msgs [][]byte
	c    mqtt.Client
}

func watch(t *testing.T, br *testbroker.Broker, topic string) *watcher {
	t.Helper()
	w := &watcher{}
	o := mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID(fmt.Sprintf("watch-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
				w.mu.Lock()
				w.msgs = append(w.msgs, append([]byte(nil), m.Payload()...))
				w.mu.Unlock()
			})
		})
	w.c = mqtt.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(50) })
	return w
}

func (w *watcher) statuses(t *testing.T) []protocol.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []protocol.Status
	for _, m := range w.msgs {
		s, err := protocol.DecodeStatus(m)
		if err != nil {
			t.Fatalf("bad status %q: %v", m, err)
		}
		out = append(out, s)
	}
	return out
}

func (w *watcher) last(t *testing.T) (protocol.Status, bool) {
	s := w.statuses(t)
	if len(s) == 0 {
		return protocol.Status{}, false
	}
	return s[len(s)-1], true
}

func publish(t *testing.T, br *testbroker.Broker, topic string, payloads ...[]byte) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(50)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

func TestDrainWithCentral(t *testing.T) {
	br := testbroker.Start(t)
	ce := central(t, br)
	// Refused taps must not count against the constraint; saved ones must.
	ce.Status = func(ck protocol.Checkin) string {
		if ck.Seq%5 == 0 {
			return protocol.StatusCardBlocked
		}
		return protocol.StatusSaved
	}
	st := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindStatus))
	r := newRig(t, br, mqttfwd.Opts{Window: 8})
	items := r.enqueue(30) // a backlog before Run
	r.run()
	items = append(items, r.enqueue(20)...)
	waitFor(t, "drain", func() bool { return r.pending() == 0 && r.nresults() == len(items) })
	ctx := context.Background()
	for _, it := range items {
		res := r.results[it.ID]
		chip := strings.SplitN(strings.SplitN(string(it.Body), `"chipNumber":"`, 2)[1], `"`, 2)[0]
		used, err := r.ob.Used(ctx, chip, "evt-1", "DAY")
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if res.Status == protocol.StatusCardBlocked {
			want = 0
		}
		if used != want {
			t.Errorf("seq %d (%s): history rows %d, want %d", it.Seq, res.Status, used, want)
		}
	}
	c := r.f.Counters()
	if c.Published != int64(len(items)) || c.Results != int64(len(items)) || c.BadPayloads != 0 {
		t.Errorf("counters %+v", c)
	}
	if !r.f.Connected() {
		t.Error("not connected")
	}
	r.f.StatusChanged()
	waitFor(t, "status with pending 0", func() bool {
		s, ok := st.last(t)
		return ok && s.Online && s.Pending == 0 && s.DeviceID == device && s.Version == "test" && s.At != ""
	})
	r.stop()
	waitFor(t, "offline status after clean shutdown", func() bool {
		s, ok := st.last(t)
		return ok && !s.Online
	})
}

// Checkins are first published in seq order, at most Window at a time.
func TestSeqOrderAndWindow(t *testing.T) {
	br := testbroker.Start(t)
	fc := clock.NewFake(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	w := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindCheckin))
	seqs := func() []int64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		var out []int64
		for _, m := range w.msgs {
			ck, err := protocol.DecodeCheckin(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ck.Seq)
		}
		return out
	}
	r := newRig(t, br, mqttfwd.Opts{Window: 5, Clock: fc})
	r.enqueue(5)
	r.run()
	waitFor(t, "5 published", func() bool { return len(seqs()) == 5 })
	r.enqueue(3)
	time.Sleep(200 * time.Millisecond) // a full window publishes nothing more
	if n := len(seqs()); n != 5 {
		t.Fatalf("%d published with a full window of 5", n)
	}
	// Central was not there: the first five come again after RetryAfter.
	central(t, br)
	fc.Advance(mqttfwd.DefaultRetryAfter)
	waitFor(t, "drain", func() bool { return r.pending() == 0 })
	var first []int64
	seen := map[int64]bool{}
	for _, s := range seqs() {
		if !seen[s] {
			seen[s] = true
			first = append(first, s)
		}
	}
	if fmt.Sprint(first) != "[1 2 3 4 5 6 7 8]" {
		t.Errorf("first publications in order %v", first)
	}
	if c := r.f.Counters(); c.Published != 8 || c.Republished != 5 {
		t.Errorf("counters %+v", c)
	}
}

func TestBrokerDownAndBack(t *testing.T) {
	br := testbroker.Start(t)
	if br.Kind != "mosquitto" {
		t.Skip("needs a restartable Mosquitto")
	}
	r := newRig(t, br, mqttfwd.Opts{Window: 16, RetryAfter: 500 * time.Millisecond})
	r.run()
	waitFor(t, "connected", r.f.Connected)
	first := r.enqueue(10) // no central yet: published, unanswered
	waitFor(t, "published", func() bool { return r.f.Counters().Published == 10 })

	br.Stop()
	waitFor(t, "disconnected", func() bool { return !r.f.Connected() })
	second := r.enqueue(10) // taps go on while central is away
	if n := r.pending(); n != 20 {
		t.Fatalf("pending while down = %d, want 20", n)
	}

	br.Start()
	waitFor(t, "reconnected", r.f.Connected)
	waitFor(t, "republished after reconnect", func() bool { return r.f.Counters().Republished >= 10 })
	// Without central nothing may leave the queue (PUBACKs are not Results).
	waitFor(t, "second batch published", func() bool { return r.f.Counters().Published >= 16 })
	if n := r.pending(); n != 20 {
		t.Fatalf("pending without central = %d, want 20", n)
	}
	ce := central(t, br)
	// Results for the checkins on the broker reach us; the rest is republished.
	r.f.Kick()
	waitFor(t, "drain", func() bool { return r.pending() == 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range append(first, second...) {
		if _, ok := r.results[it.ID]; !ok {
			t.Errorf("seq %d left the queue without a Result", it.Seq)
		}
	}
	t.Logf("counters %+v, central received %d", r.f.Counters(), ce.Received.Load())
}

func TestRepublishAfterRetry(t *testing.T) {
	br := testbroker.Start(t)
	fc := clock.NewFake(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	ce := central(t, br)
	var answer atomic.Bool
	ce.Status = func(protocol.Checkin) string {
		if answer.Load() {
			return protocol.StatusSaved
		}
		return ""
	}
	r := newRig(t, br, mqttfwd.Opts{Clock: fc, RetryAfter: 30 * time.Second})
	r.run()
	r.enqueue(3)
	waitFor(t, "published", func() bool { return r.f.Counters().Published == 3 && ce.Received.Load() == 3 })
	fc.Advance(29 * time.Second)
	if c := r.f.Counters(); c.Republished != 0 {
		t.Fatalf("republished before RetryAfter: %+v", c)
	}
	answer.Store(true)
	fc.Advance(time.Second)
	waitFor(t, "republished", func() bool { return r.f.Counters().Republished == 3 })
	waitFor(t, "drain", func() bool { return r.pending() == 0 && r.f.Counters().Results == 3 })
	if c := r.f.Counters(); c.Published != 3 {
		t.Fatalf("counters %+v", c)
	}
}

func TestBadPayloads(t *testing.T) {
	br := testbroker.Start(t)
	r := newRig(t, br, mqttfwd.Opts{})
	r.run()
	waitFor(t, "connected", r.f.Connected)
	topic := protocol.Topic(protocol.DefaultPrefix, device, protocol.KindResult)
	big := `{"v":1,"id":"x","status":"saved","pad":"` + strings.Repeat("x", protocol.MaxPayload) + `"}`
	publish(t, br, topic,
		[]byte("garbage"),
		[]byte(big),
		[]byte(`{"v":2,"id":"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11","status":"saved"}`),
		[]byte(`{"v":1,"id":"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11","status":"weird"}`),
		[]byte(`[1,2,3]`),
		[]byte{0xff, 0x00, 0xfe},
		protocol.Result{ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", Status: protocol.StatusSaved}.Encode(), // unknown id
	)
	waitFor(t, "bad payloads counted", func() bool {
		c := r.f.Counters()
		return c.BadPayloads == 6 && c.UnknownResults == 1
	})
	// Still working.
	central(t, br)
	r.enqueue(2)
	waitFor(t, "drain", func() bool { return r.pending() == 0 })
}

func TestConfigPassedThrough(t *testing.T) {
	br := testbroker.Start(t)
	got := make(chan []byte, 4)
	r := newRig(t, br, mqttfwd.Opts{OnConfig: func(p []byte) { got <- append([]byte(nil), p...) }})
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID("cfg-pub"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	tok := c.Publish(protocol.Topic(protocol.DefaultPrefix, device, protocol.KindConfig), 1, true, []byte(`{"v":1,"serial":1}`))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(50)
	r.run() // the retained config arrives on subscribe
	select {
	case p := <-got:
		if string(p) != `{"v":1,"serial":1}` {
			t.Fatalf("config %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no config")
	}
}

func TestWillAfterConnectionLoss(t *testing.T) {
	br := testbroker.Start(t)
	st := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindStatus))
	r := newRig(t, br, mqttfwd.Opts{})
	r.run()
	waitFor(t, "online status", func() bool { s, ok := st.last(t); return ok && s.Online })
	r.f.DropConn() // no DISCONNECT: the broker publishes the will
	waitFor(t, "will", func() bool {
		for _, s := range st.statuses(t) {
			if !s.Online && s.DeviceID == device {
				return true
			}
		}
		return false
	})
	waitFor(t, "online again", func() bool { s, ok := st.last(t); return ok && s.Online && r.f.Connected() })

	// The retained status is what a late subscriber sees.
	late := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindStatus))
	waitFor(t, "retained status", func() bool { s, ok := late.last(t); return ok && s.Online })
}

func TestNewValidates(t *testing.T) {
	ob, err := queue.Open(filepath.Join(t.TempDir(), "o.db"), queue.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for _, o := range []mqttfwd.Opts{
		{Broker: "tcp://127.0.0.1:1", DeviceID: "Bad/ID"},
		{Broker: "http://x", DeviceID: device},
		{Broker: "not a url", DeviceID: device},
	} {
		if _, err := mqttfwd.New(ob, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	f, err := mqttfwd.New(ob, mqttfwd.Opts{Broker: "ssl://h:8883", DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	for n := int64(1); n < 40; n++ {
		d := f.Backoff(n)
		if d < 250*time.Millisecond || d > 15*time.Second {
			t.Errorf("backoff(%d) = %v", n, d)
		}
	}
	if d := f.Backoff(30); d < 7500*time.Millisecond {
		t.Errorf("backoff cap %v: the jitter is half to all of 15s", d)
	}
}

// TestReconnectAfterBackoffLongerThanConnectTimeout: a backoff wait longer
// than paho's connect timeout must not fail the attempt that follows it (it
// did while the wait ran inside the dialer, after paho had started the
// attempt's deadline: after a long outage a kiosk never came back).
func TestReconnectAfterBackoffLongerThanConnectTimeout(t *testing.T) {
	br := testbroker.Start(t)
	if br.Kind != "mosquitto" {
		t.Skip("needs a broker that restarts")
	}
	r := newRig(t, br, mqttfwd.Opts{})
	r.f.SetBackoff(400*time.Millisecond, 800*time.Millisecond)
	r.f.SetConnectTimeout(300 * time.Millisecond)
	r.run()
	waitFor(t, "connected", r.f.Connected)
	br.Stop()
	waitFor(t, "disconnected", func() bool { return !r.f.Connected() })
	time.Sleep(1500 * time.Millisecond) // several attempts, their waits now longer than the timeout
	br.Start()
	waitFor(t, "reconnected after the outage", r.f.Connected)
}

// TestReconnectUnderFakeClock: the reconnect backoff runs on real time, so a
// forwarder whose clock is faked (for its retry and status timers) still
// connects once the broker is there, without the test advancing the clock.
func TestReconnectUnderFakeClock(t *testing.T) {
	br := testbroker.Start(t)
	if br.Kind != "mosquitto" {
		t.Skip("needs a broker that restarts")
	}
	br.Stop() // the first attempts fail
	fc := clock.NewFake(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	r := newRig(t, br, mqttfwd.Opts{Clock: fc})
	r.run()
	time.Sleep(300 * time.Millisecond) // several failed attempts, each followed by a backoff
	br.Start()
	waitFor(t, "connected without the fake clock moving", r.f.Connected)
}
