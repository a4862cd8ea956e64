package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/mqttconn"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

const prefix = protocol.DefaultPrefix

// results collects every Result published under the prefix.
type results struct {
	mu   sync.Mutex
	byID map[string][][]byte
	all  int
}

func (r *results) add(_ mqtt.Client, m mqtt.Message) {
	res, err := protocol.DecodeResult(m.Payload())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all++
	if err != nil {
		r.byID["!bad"] = append(r.byID["!bad"], m.Payload())
		return
	}
	r.byID[res.ID] = append(r.byID[res.ID], bytes.Clone(m.Payload()))
}

func (r *results) get(id string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// wait waits until every id has at least one Result.
func (r *results) wait(t testing.TB, ids ...string) {
	t.Helper()
	missing := 0
	if !waitfor.Within(waitfor.Timeout, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		missing = 0
		for _, id := range ids {
			if len(r.byID[id]) == 0 {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Fatalf("%d of %d results missing", missing, len(ids))
	}
}

func connectClient(t testing.TB, url, id string) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetCustomOpenConnectionFn(mqttconn.Open) // reads buffered, as a kiosk's forwarder reads
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func subscribeResults(t testing.TB, url string) *results {
	t.Helper()
	r := &results{byID: map[string][][]byte{}}
	c := connectClient(t, url, "test-results")
	if tok := c.Subscribe(prefix+"/+/result", 1, r.add); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return r
}

func publish(t testing.TB, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func checkinFor(t testing.TB, device string, seq int64, chip string) protocol.Checkin {
	return protocol.Checkin{V: 1, ID: newID(t), DeviceID: device, Seq: seq, ChipNumber: chip, EventID: "evt-1",
		CounterID: "balie", TappedAt: protocol.FormatTime(time.Now()), ClockSynced: true, BootID: "b", UptimeMs: seq}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// runService runs a Service until the test ends (or stop is called) and
// waits until it has subscribed.
func runService(t testing.TB, l *Ledger, o ServiceOpts) (svc *Service, stop func()) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = 300 * time.Millisecond
	}
	svc, err := New(l, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-svc.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("service did not subscribe")
	}
	return svc, stop
}

func serviceLedger(t testing.TB) *Ledger {
	t.Helper()
	o := DefaultOpts()
	o.EnrollUnknown = true
	l := openLedger(t, o)
	setup(t, l, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	return l
}

func TestServiceOneResultPerIDAndReplay(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL(), ClientID: "ingest-1"})
	res := subscribeResults(t, b.URL())
	k := connectClient(t, b.URL(), "kiosk-a-01")

	var ids []string
	var sent []protocol.Checkin
	for i := 1; i <= 20; i++ {
		c := checkinFor(t, "kiosk-a-01", int64(i), chipA)
		sent = append(sent, c)
		ids = append(ids, c.ID)
		publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
	}
	res.wait(t, ids...)
	// The kiosk republishes the first three (same id, same body).
	for _, c := range sent[:3] {
		publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
	}
	// A last checkin: its Result comes after every earlier one.
	last := checkinFor(t, "kiosk-a-01", 21, chipB)
	publish(t, k, protocol.Topic(prefix, last.DeviceID, protocol.KindCheckin), last.Encode())
	res.wait(t, last.ID)

	for i, c := range sent {
		got := res.get(c.ID)
		want := 1
		if i < 3 {
			want = 2
		}
		if len(got) != want {
			t.Fatalf("checkin %d: %d results, want %d", i, len(got), want)
		}
		if want == 2 && !bytes.Equal(got[0], got[1]) {
			t.Errorf("replay differs:\n%s\n%s", got[0], got[1])
		}
		r, _ := protocol.DecodeResult(got[0])
		wantStatus := protocol.StatusMaximumReached
		if i == 0 {
			wantStatus = protocol.StatusSaved
		}
		if r.Status != wantStatus {
			t.Errorf("checkin %d: %s", i, got[0])
		}
	}
	c := svc.Counters()
	if c.Results != 24 || c.Replays != 3 || c.Dropped() != 0 {
		t.Errorf("counters %+v", c)
	}
	if n := countEntries(t, l); n != 21 {
		t.Errorf("ledger rows = %d, want 21", n)
	}
}

func TestServiceDropsGarbageAndStaysAlive(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL()})
	res := subscribeResults(t, b.URL())
	k := connectClient(t, b.URL(), "kiosk-g-01")
	topic := protocol.Topic(prefix, "kiosk-g-01", protocol.KindCheckin)

	good := checkinFor(t, "kiosk-g-01", 1, chipA)
	v2 := strings.Replace(string(good.Encode()), `"v":1`, `"v":2`, 1)
	noChip := strings.Replace(string(good.Encode()), `"chipNumber":"`+chipA+`"`, `"chipNumber":""`, 1)
	big := `{"v":1,"pad":"` + strings.Repeat("x", 5000) + `"}`
	other := checkinFor(t, "kiosk-other-02", 1, chipA) // on kiosk-g-01's topic
	for _, p := range []string{"", "not json", "[1,2]", `{"v":1`, "\xff\xfe", big, v2, noChip, `{"v":1}`, string(other.Encode())} {
		publish(t, k, topic, []byte(p))
	}
	publish(t, k, topic, good.Encode())
	res.wait(t, good.ID)

	c := svc.Counters()
	if c.DropMalformed != 5 || c.DropTooLarge != 1 || c.DropVersion != 1 || c.DropInvalid != 2 || c.DropMismatch != 1 {
		t.Errorf("counters %+v", c)
	}
	if c.Results != 1 || res.get(other.ID) != nil || res.get("!bad") != nil {
		t.Errorf("garbage was answered: %+v", c)
	}
	if n := countEntries(t, l); n != 1 {
		t.Errorf("ledger rows = %d", n)
	}
}

func TestServiceManyDevices(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL()})
	res := subscribeResults(t, b.URL())
	const devices, each = 20, 25
	ids := make([][]string, devices)
	var wg sync.WaitGroup
	for d := 0; d < devices; d++ {
		device := fmt.Sprintf("kiosk-many-%02d", d)
		k := connectClient(t, b.URL(), device)
		for i := 0; i < each; i++ {
			ids[d] = append(ids[d], newID(t))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, id := range ids[d] {
				c := checkinFor(t, device, int64(i+1), fmt.Sprintf("04%012X", d*1000+i))
				c.ID = id
				if tok := k.Publish(protocol.Topic(prefix, device, protocol.KindCheckin), 1, false, c.Encode()); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	var all []string
	for _, x := range ids {
		all = append(all, x...)
	}
	res.wait(t, all...)
	for _, id := range all {
		got := res.get(id)
		if len(got) != 1 {
			t.Fatalf("%s: %d results", id, len(got))
		}
		if r, _ := protocol.DecodeResult(got[0]); r.Status != protocol.StatusSaved {
			t.Fatalf("%s", got[0])
		}
	}
	c := svc.Counters()
	if c.Results != devices*each || c.Batches < 1 || c.Batches > devices*each {
		t.Errorf("counters %+v", c)
	}
	t.Logf("%d checkins in %d batches", c.Results, c.Batches)
}

// TestServiceSurvivesBrokerRestart takes the broker down and up again: the
// service's persistent session keeps its subscription, and checkins published
// before it has reconnected are queued for it by the broker.
func TestServiceSurvivesBrokerRestart(t *testing.T) {
	b := testbroker.Start(t)
	if b.Kind != "mosquitto" {
		t.Skip("needs a restartable Mosquitto")
	}
	l := serviceLedger(t)
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL(), ClientID: "ingest-restart"})
	{
		res := subscribeResults(t, b.URL())
		k := connectClient(t, b.URL(), "kiosk-r-01")
		c := checkinFor(t, "kiosk-r-01", 1, chipA)
		publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
		res.wait(t, c.ID)
	}
	b.Stop()
	b.Start()
	res := subscribeResults(t, b.URL())
	k := connectClient(t, b.URL(), "kiosk-r-01")
	var ids []string
	for i := 2; i <= 6; i++ {
		c := checkinFor(t, "kiosk-r-01", int64(i), chipB)
		ids = append(ids, c.ID)
		publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
	}
	res.wait(t, ids...)
	// The first checkin may come again after the restart (its PUBACK can be
	// lost with the broker): then it is a replay.
	if c := svc.Counters(); c.Connects < 2 || c.Results-c.Replays != 6 {
		t.Errorf("counters %+v", c)
	}
}

// TestServiceGetsWhatCameWhileAway stops the service, lets a kiosk publish,
// and starts a new service with the same client id on the same ledger.
func TestServiceGetsWhatCameWhileAway(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	_, stop := runService(t, l, ServiceOpts{Broker: b.URL(), ClientID: "ingest-away"})
	stop()
	res := subscribeResults(t, b.URL())
	k := connectClient(t, b.URL(), "kiosk-w-01")
	var ids []string
	for i := 1; i <= 5; i++ {
		c := checkinFor(t, "kiosk-w-01", int64(i), chipA)
		ids = append(ids, c.ID)
		publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
	}
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL(), ClientID: "ingest-away"})
	res.wait(t, ids...)
	if c := svc.Counters(); c.Results != 5 {
		t.Errorf("counters %+v", c)
	}
}

func TestNewChecksOpts(t *testing.T) {
	l := openLedger(t, DefaultOpts())
	for _, u := range []string{"", "localhost:1883", "http://x:1", "tcp://"} {
		if _, err := New(l, ServiceOpts{Broker: u}); err == nil {
			t.Errorf("broker %q accepted", u)
		}
	}
	s, err := New(l, ServiceOpts{Broker: "tcp://127.0.0.1:1", SharedGroup: "g"})
	if err != nil || s.topic != "$share/g/kiosk/v1/+/checkin" {
		t.Fatalf("%v %v", s, err)
	}
}

// FuzzCheck feeds the service's payload check arbitrary topics and bytes: it
// must never panic, and what it accepts is a valid checkin of the topic's
// device.
func FuzzCheck(f *testing.F) {
	good := protocol.Checkin{V: 1, ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", DeviceID: "kiosk-f-01", Seq: 1,
		ChipNumber: chipA, EventID: "evt-1", TappedAt: "2026-11-24T09:12:33.481Z"}
	f.Add("kiosk/v1/kiosk-f-01/checkin", good.Encode())
	f.Add("kiosk/v1/kiosk-f-02/checkin", good.Encode())
	f.Add("kiosk/v1/kiosk-f-01/result", []byte(`{"v":1}`))
	f.Add("kiosk/v1//checkin", []byte(`{"v":2}`))
	f.Add("kiosk/v1/kiosk-f-01/checkin", []byte("\x00\xff"))
	l := openLedger(f, DefaultOpts())
	s, err := New(l, ServiceOpts{Broker: "tcp://127.0.0.1:1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		c, reason, err := s.check(topic, payload)
		if err != nil {
			if reason == "" {
				t.Fatalf("dropped without a reason: %v", err)
			}
			return
		}
		device, _, _ := protocol.ParseTopic(prefix, topic)
		if c.DeviceID != device || !protocol.ValidID(c.ID) || len(payload) > protocol.MaxPayload {
			t.Fatalf("accepted %q on %q", payload, topic)
		}
	})
}

func TestRunStopsWhileBrokerUnreachable(t *testing.T) {
	l := openLedger(t, DefaultOpts())
	svc, err := New(l, ServiceOpts{Broker: fmt.Sprintf("tcp://127.0.0.1:%d", testbroker.FreePort(t)), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := svc.Run(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Run: %v", err)
	}
}
