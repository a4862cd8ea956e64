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
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd/fwdbench"
)

const device = "kiosk-test-01"

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
	if o.Logger == nil {
		o.Logger = logger(t)
	}
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

// watch connects a client that collects what is published on topic, and
// returns once the broker granted the subscription (its SUBACK): from then
// on nothing published on topic is missed.
func watch(t *testing.T, br *testbroker.Broker, topic string) *watcher {
	t.Helper()
	return watchDelayed(t, br, topic, 0)
}

// watchDelayed is watch with the subscribe delayed after the connect, as on
// a slow machine (the TestSeqOrderAndWindow flake: watch returned before
// its subscription was active, and what the forwarder published meanwhile
// was not seen; a 300 ms delay made it fail every time).
func watchDelayed(t *testing.T, br *testbroker.Broker, topic string, delay time.Duration) *watcher {
	t.Helper()
	w := &watcher{}
	subscribed := make(chan error, 1)
	var once sync.Once
	o := mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID(fmt.Sprintf("watch-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			time.Sleep(delay) // injected latency, not a wait
			tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
				w.mu.Lock()
				w.msgs = append(w.msgs, append([]byte(nil), m.Payload()...))
				w.mu.Unlock()
			})
			go func() {
				var err error
				if !tok.WaitTimeout(10 * time.Second) {
					err = fmt.Errorf("no SUBACK for %s", topic)
				} else if err = tok.Error(); err == nil {
					if q := tok.(*mqtt.SubscribeToken).Result()[topic]; q > 2 {
						err = fmt.Errorf("subscription to %s refused (0x%02x)", topic, q)
					}
				}
				once.Do(func() { subscribed <- err })
			}()
		})
	w.c = mqtt.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(50) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("watcher: %v", err)
		}
	case <-time.After(waitfor.Timeout):
		t.Fatalf("watcher: not subscribed to %s within %v", topic, waitfor.Timeout)
	}
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
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 && r.nresults() == len(items) })
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
	waitfor.Cond(t, "status with pending 0", func() bool {
		s, ok := st.last(t)
		return ok && s.Online && s.Pending == 0 && s.DeviceID == device && s.Version == "test" && s.At != ""
	})
	r.stop()
	waitfor.Cond(t, "offline status after clean shutdown", func() bool {
		s, ok := st.last(t)
		return ok && !s.Online
	})
}

// watch returns only once its subscription is active, however slow the
// subscribe: what is published right after it is seen.
func TestWatchWaitsForSubscription(t *testing.T) {
	br := testbroker.Start(t)
	topic := protocol.Topic(protocol.DefaultPrefix, device, protocol.KindCheckin)
	w := watchDelayed(t, br, topic, 300*time.Millisecond)
	publish(t, br, topic, []byte("first"))
	waitfor.Cond(t, "the message published right after watch returned", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.msgs) == 1
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
	waitfor.Cond(t, "5 published", func() bool { return len(seqs()) == 5 })
	turns := r.f.Turns()
	r.enqueue(3)
	// A full window publishes nothing more: once the loop has taken the
	// kick, its refill is done.
	waitfor.Cond(t, "the loop to take the kick", func() bool { return r.f.Turns() > turns })
	if c := r.f.Counters(); c.Published != 5 {
		t.Fatalf("%d published with a full window of 5", c.Published)
	}
	// Central was not there: the first five come again after RetryAfter.
	central(t, br)
	fc.Advance(mqttfwd.DefaultRetryAfter)
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 })
	firsts := func() []int64 {
		var first []int64
		seen := map[int64]bool{}
		for _, s := range seqs() {
			if !seen[s] {
				seen[s] = true
				first = append(first, s)
			}
		}
		return first
	}
	// The watcher is one more subscriber: central's Results can drain the
	// outbox before the watcher has been handed the last checkins.
	waitfor.Cond(t, "the watcher to see all 8", func() bool { return len(firsts()) == 8 })
	if first := firsts(); fmt.Sprint(first) != "[1 2 3 4 5 6 7 8]" {
		t.Errorf("first publications in order %v", first)
	}
	if c := r.f.Counters(); c.Published != 8 || c.Republished != 5 {
		t.Errorf("counters %+v", c)
	}
}

// Checkins salvaged into the outbox keep their older seq: Rescan makes a
// running forwarder, already past that seq, read them.
func TestRescanAfterSalvage(t *testing.T) {
	br := testbroker.Start(t)
	central(t, br)
	r := newRig(t, br, mqttfwd.Opts{})
	r.run()
	r.enqueue(3)
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 && r.nresults() == 3 })

	// A set-aside queue whose checkins have seq 1 and 2.
	src := filepath.Join(t.TempDir(), "aside.db")
	old, err := queue.Open(src, queue.Opts{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	old.Enqueue(context.Background(), checkinEntry(device, 1))
	old.Enqueue(context.Background(), checkinEntry(device, 2))
	old.Close()
	if n, err := queue.Salvage(src, r.ob); n != 2 || err != nil {
		t.Fatalf("salvage: %d, %v", n, err)
	}
	r.f.Rescan()
	waitfor.Cond(t, "the salvaged checkins forwarded", func() bool { return r.pending() == 0 && r.nresults() == 5 })
}

func TestBrokerDownAndBack(t *testing.T) {
	br := testbroker.Start(t)
	if br.Kind != "mosquitto" {
		t.Skip("needs a restartable Mosquitto")
	}
	r := newRig(t, br, mqttfwd.Opts{Window: 16, RetryAfter: 500 * time.Millisecond})
	r.run()
	waitfor.Cond(t, "connected", r.f.Connected)
	first := r.enqueue(10) // no central yet: published, unanswered
	waitfor.Cond(t, "published", func() bool { return r.f.Counters().Published == 10 })

	br.Stop()
	waitfor.Cond(t, "disconnected", func() bool { return !r.f.Connected() })
	second := r.enqueue(10) // taps go on while central is away
	if n := r.pending(); n != 20 {
		t.Fatalf("pending while down = %d, want 20", n)
	}

	br.Start()
	waitfor.Cond(t, "reconnected", r.f.Connected)
	waitfor.Cond(t, "republished after reconnect", func() bool { return r.f.Counters().Republished >= 10 })
	// Without central nothing may leave the queue (PUBACKs are not Results).
	waitfor.Cond(t, "second batch published", func() bool { return r.f.Counters().Published >= 16 })
	if n := r.pending(); n != 20 {
		t.Fatalf("pending without central = %d, want 20", n)
	}
	ce := central(t, br)
	// Results for the checkins on the broker reach us; the rest is republished.
	r.f.Kick()
	// OnResult runs after the outbox applied the Result: wait for both.
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 && r.nresults() >= len(first)+len(second) })
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
	waitfor.Cond(t, "published", func() bool { return r.f.Counters().Published == 3 && ce.Received.Load() == 3 })
	fc.Advance(29 * time.Second)
	if c := r.f.Counters(); c.Republished != 0 {
		t.Fatalf("republished before RetryAfter: %+v", c)
	}
	answer.Store(true)
	fc.Advance(time.Second)
	waitfor.Cond(t, "republished", func() bool { return r.f.Counters().Republished == 3 })
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 && r.f.Counters().Results == 3 })
	if c := r.f.Counters(); c.Published != 3 {
		t.Fatalf("counters %+v", c)
	}
}

func TestBadPayloads(t *testing.T) {
	br := testbroker.Start(t)
	r := newRig(t, br, mqttfwd.Opts{})
	r.run()
	waitfor.Cond(t, "connected", r.f.Connected)
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
	waitfor.Cond(t, "bad payloads counted", func() bool {
		c := r.f.Counters()
		return c.BadPayloads == 6 && c.UnknownResults == 1
	})
	// Still working.
	central(t, br)
	r.enqueue(2)
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 })
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
	var p []byte
	waitfor.Cond(t, "the retained config", func() bool {
		select {
		case p = <-got:
			return true
		default:
			return false
		}
	})
	if string(p) != `{"v":1,"serial":1}` {
		t.Fatalf("config %q", p)
	}
}

func TestWillAfterConnectionLoss(t *testing.T) {
	br := testbroker.Start(t)
	st := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindStatus))
	r := newRig(t, br, mqttfwd.Opts{})
	r.run()
	waitfor.Cond(t, "online status", func() bool { s, ok := st.last(t); return ok && s.Online })
	r.f.DropConn() // no DISCONNECT: the broker publishes the will
	waitfor.Cond(t, "will", func() bool {
		for _, s := range st.statuses(t) {
			if !s.Online && s.DeviceID == device {
				return true
			}
		}
		return false
	})
	waitfor.Cond(t, "online again", func() bool { s, ok := st.last(t); return ok && s.Online && r.f.Connected() })

	// The retained status is what a late subscriber sees.
	late := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindStatus))
	waitfor.Cond(t, "retained status", func() bool { s, ok := late.last(t); return ok && s.Online })
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
		if d < 250*time.Millisecond || d > 6*time.Second {
			t.Errorf("backoff(%d) = %v", n, d)
		}
	}
	if d := f.Backoff(30); d < 3*time.Second {
		t.Errorf("backoff cap %v: the jitter is half to all of 6s", d)
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
	waitfor.Cond(t, "connected", r.f.Connected)
	br.Stop()
	waitfor.Cond(t, "disconnected", func() bool { return !r.f.Connected() })
	// Several attempts, their waits now longer than the timeout.
	waitfor.Cond(t, "4 failed attempts", func() bool { return r.f.Attempts() >= 4 })
	br.Start()
	waitfor.Cond(t, "reconnected after the outage", r.f.Connected)
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
	// Several failed attempts, each followed by a backoff.
	waitfor.Cond(t, "3 failed attempts", func() bool { return r.f.Attempts() >= 3 })
	br.Start()
	waitfor.Cond(t, "connected without the fake clock moving", r.f.Connected)
}
