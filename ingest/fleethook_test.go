package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

// fakeSink records what the service hands the fleet registry.
type fakeSink struct {
	mu       sync.Mutex
	statuses []sunk
	checkins []string
}

type sunk struct {
	s        protocol.Status
	raw      string
	retained bool
}

func (f *fakeSink) Status(s protocol.Status, raw []byte, _ time.Time, retained bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, sunk{s, string(raw), retained})
}

func (f *fakeSink) Checkin(device string, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkins = append(f.checkins, device)
}

func (f *fakeSink) snapshot() ([]sunk, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sunk(nil), f.statuses...), append([]string(nil), f.checkins...)
}

// TestServiceFleetHook: with ServiceOpts.Fleet the service subscribes
// P/+/status: the retained Status arrives (marked retained), garbage and a
// Status on another device's topic are counted and dropped, the service
// stays alive, and every booked checkin's device reaches the sink.
func TestServiceFleetHook(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	k := connectClient(t, b.URL(), "kiosk-s-01")
	retained := protocol.Status{DeviceID: "kiosk-s-02", Online: true, Version: "1.0.0", At: protocol.FormatTime(time.Now())}
	if tok := k.Publish(protocol.Topic(prefix, "kiosk-s-02", protocol.KindStatus), 1, true, retained.Encode()); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { k.Publish(protocol.Topic(prefix, "kiosk-s-02", protocol.KindStatus), 1, true, []byte{}).Wait() })

	sink := &fakeSink{}
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL(), Fleet: sink})
	waitfor.Cond(t, "the retained status", func() bool { s, _ := sink.snapshot(); return len(s) == 1 })

	topic := protocol.Topic(prefix, "kiosk-s-01", protocol.KindStatus)
	good := protocol.Status{DeviceID: "kiosk-s-01", Online: true, At: protocol.FormatTime(time.Now())}
	other := protocol.Status{DeviceID: "kiosk-s-99", Online: true}
	v2 := strings.Replace(string(good.Encode()), `"v":1`, `"v":2`, 1)
	for _, p := range []string{"", "not json", `{"v":1}`, v2, `{"v":1,"online":"yes","deviceId":"kiosk-s-01"}`, string(other.Encode())} {
		publish(t, k, topic, []byte(p))
	}
	publish(t, k, topic, good.Encode())
	publish(t, k, topic, []byte(protocol.Will("kiosk-s-01")))
	ck := checkinFor(t, "kiosk-s-01", 1, chipA)
	res := subscribeResults(t, b.URL())
	publish(t, k, protocol.Topic(prefix, "kiosk-s-01", protocol.KindCheckin), ck.Encode())
	res.wait(t, ck.ID)
	waitfor.Cond(t, "statuses and checkin handed over", func() bool {
		s, c := sink.snapshot()
		return len(s) == 3 && len(c) == 1
	})
	s, c := sink.snapshot()
	if !s[0].retained || s[0].s.DeviceID != "kiosk-s-02" || s[1].retained || s[1].raw != string(good.Encode()) ||
		s[2].s.Online || s[2].s.DeviceID != "kiosk-s-01" || c[0] != "kiosk-s-01" {
		t.Fatalf("statuses %+v, checkins %v", s, c)
	}
	cs := svc.Counters()
	if cs.StatusReceived != 9 || cs.StatusDropped != 6 || cs.Dropped() != 0 || cs.Results != 1 {
		t.Fatalf("counters %+v", cs)
	}
}

// TestServiceWithoutFleet: without a sink the status topic is not
// subscribed and nothing is counted.
func TestServiceWithoutFleet(t *testing.T) {
	b := testbroker.Start(t)
	l := serviceLedger(t)
	svc, _ := runService(t, l, ServiceOpts{Broker: b.URL()})
	k := connectClient(t, b.URL(), "kiosk-s-03")
	publish(t, k, protocol.Topic(prefix, "kiosk-s-03", protocol.KindStatus), protocol.Will("kiosk-s-03"))
	ck := checkinFor(t, "kiosk-s-03", 1, chipA)
	res := subscribeResults(t, b.URL())
	publish(t, k, protocol.Topic(prefix, "kiosk-s-03", protocol.KindCheckin), ck.Encode())
	res.wait(t, ck.ID)
	if c := svc.Counters(); c.StatusReceived != 0 || c.Dropped() != 0 {
		t.Fatalf("%+v", c)
	}
}

// BenchmarkServiceFleet is BenchmarkServiceEndToEnd's checkins from 10
// kiosks while 1 000 other kiosks publish Status, at 100 a second (each
// kiosk at the contract's fastest pace, every 10 s) or 1 000 a second (ten
// times that), with the fleet registry off and on: what status ingestion
// costs the checkins.
func BenchmarkServiceFleet(b *testing.B) {
	for _, rate := range []int{100, 1000} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("status-per-s=%d/fleet=%v", rate, on), func(b *testing.B) { benchServiceFleet(b, rate, on) })
		}
	}
}

func benchServiceFleet(b *testing.B, rate int, on bool) {
	br := testbroker.Start(b)
	o := DefaultOpts()
	o.EnrollUnknown = true
	l := openLedger(b, o)
	so := ServiceOpts{Broker: br.URL(), Logger: slog.New(slog.DiscardHandler)}
	var feeder *fleet.Feeder
	if on {
		reg, err := fleet.Open(context.Background(), l.DB(), l.Dialect(), fleet.Opts{})
		if err != nil {
			b.Fatal(err)
		}
		feeder = reg.NewFeeder(fleet.FeederOpts{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); feeder.Run(ctx) }()
		b.Cleanup(func() { cancel(); <-done })
		so.Fleet = feeder
	}
	svc, _ := runService(b, l, so)
	res := subscribeResults(b, br.URL())

	stop := make(chan struct{})
	var sw sync.WaitGroup
	sw.Go(func() {
		sc := connectClient(b, br.URL(), "status-flood")
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			d := fmt.Sprintf("kiosk-st-%04d", i%1000)
			st := protocol.Status{DeviceID: d, Online: true, Version: "1.0.0", Pending: i % 7, ClockSynced: true,
				At: protocol.FormatTime(time.Now())}
			sc.Publish(protocol.Topic(prefix, d, protocol.KindStatus), 1, true, st.Encode())
		}
	})
	const kiosks = 10
	clients := make([]mqtt.Client, kiosks)
	for i := range clients {
		clients[i] = connectClient(b, br.URL(), fmt.Sprintf("kiosk-bench-%02d", i))
	}
	ids := make([]string, b.N)
	payloads := make([][]byte, b.N)
	for i := range ids {
		c := checkinFor(b, fmt.Sprintf("kiosk-bench-%02d", i%kiosks), int64(i/kiosks+1), fmt.Sprintf("04%012X", i))
		ids[i], payloads[i] = c.ID, c.Encode()
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for k := range kiosks {
		wg.Go(func() {
			var last mqtt.Token
			for i := k; i < b.N; i += kiosks {
				last = clients[k].Publish(protocol.Topic(prefix, fmt.Sprintf("kiosk-bench-%02d", k), protocol.KindCheckin), 1, false, payloads[i])
			}
			if last != nil {
				last.WaitTimeout(time.Minute)
			}
		})
	}
	wg.Wait()
	res.wait(b, ids...)
	b.StopTimer()
	close(stop)
	sw.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
	if feeder != nil {
		fc := feeder.Counters()
		b.ReportMetric(float64(svc.Counters().StatusReceived), "statuses")
		b.ReportMetric(float64(fc.Flushes), "flushes")
	}
}

// fakeMessage is an mqtt.Message for calling the handlers directly.
type fakeMessage struct {
	topic    string
	payload  []byte
	retained bool
	acked    bool
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return 1 }
func (m *fakeMessage) Retained() bool    { return m.retained }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return 1 }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack()              { m.acked = true }

// FuzzStatusHook: any topic and payload on the status handler is either
// handed to the fleet sink as a Status of the topic's device, or counted
// as dropped; it is always acknowledged and never panics.
func FuzzStatusHook(f *testing.F) {
	good := protocol.Status{DeviceID: "kiosk-f-01", Online: true, At: "2026-11-24T09:12:33.481Z"}
	f.Add("kiosk/v1/kiosk-f-01/status", good.Encode())
	f.Add("kiosk/v1/kiosk-f-02/status", good.Encode())
	f.Add("kiosk/v1/kiosk-f-01/status", protocol.Will("kiosk-f-01"))
	f.Add("kiosk/v1/kiosk-f-01/checkin", protocol.Will("kiosk-f-01"))
	f.Add("kiosk/v1//status", []byte(`{"v":1,"deviceId":""}`))
	f.Add("kiosk/v1/kiosk-f-01/status", []byte("\x00\xff"))
	l := openLedger(f, DefaultOpts())
	sink := &fakeSink{}
	s, err := New(l, ServiceOpts{Broker: "tcp://127.0.0.1:1", Fleet: sink})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		before, _ := sink.snapshot()
		c0 := s.Counters()
		m := &fakeMessage{topic: topic, payload: payload}
		s.onStatus(nil, m)
		after, _ := sink.snapshot()
		c1 := s.Counters()
		if !m.acked || c1.StatusReceived != c0.StatusReceived+1 {
			t.Fatalf("not acknowledged or not counted: %+v", c1)
		}
		handed := len(after) - len(before)
		dropped := c1.StatusDropped - c0.StatusDropped
		if handed+int(dropped) != 1 {
			t.Fatalf("handed %d, dropped %d", handed, dropped)
		}
		if handed == 1 {
			device, kind, err := protocol.ParseTopic(prefix, topic)
			if err != nil || kind != protocol.KindStatus || after[len(after)-1].s.DeviceID != device || len(payload) > protocol.MaxPayload {
				t.Fatalf("handed over %q on %q", payload, topic)
			}
		}
	})
}
