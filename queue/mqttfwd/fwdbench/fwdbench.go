// Package fwdbench measures the forwarder against a real broker: a raw paho
// request→reply through the same broker and fake central as the yardstick
// (and the one-way QoS 1 publish rate), and the drain of an outbox backlog
// through a fake central that answers every checkin. The project's bench
// tool and the mqttfwd benchmarks both call it.
package fwdbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
)

// Prefix is the topic prefix of the measurements' own traffic (requests,
// drains, the fake central): not the contract's, so that an ingest serving
// the same broker (kiosk-bench runs one) neither answers nor books it.
const Prefix = "fwdbench/v1"

// Result is one measurement.
type Result struct {
	N       int
	Elapsed time.Duration
}

// PerSec is the message rate.
func (r Result) PerSec() float64 { return float64(r.N) / r.Elapsed.Seconds() }

func (r Result) String() string {
	return fmt.Sprintf("%d msgs in %v = %.0f msgs/s", r.N, r.Elapsed.Round(time.Millisecond), r.PerSec())
}

func connect(broker, id string, clean, ordered bool) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(clean).
		SetOrderMatters(ordered).SetAutoReconnect(false).SetWriteTimeout(10 * time.Second)
	c := mqtt.NewClient(o)
	t := c.Connect()
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("fwdbench: connect %s: %v", broker, t.Error())
	}
	return c, nil
}

// RawPublish publishes n checkin-sized messages at QoS 1 as fast as paho
// takes them and returns when every PUBACK arrived.
func RawPublish(ctx context.Context, broker string, n int) (Result, error) {
	c, err := connect(broker, fmt.Sprintf("fwdbench-raw-%d", time.Now().UnixNano()), true, false)
	if err != nil {
		return Result{}, err
	}
	defer c.Disconnect(100)
	body := sampleCheckin("fwdbench-raw", 1)
	toks := make([]mqtt.Token, n)
	start := time.Now()
	for i := range toks {
		toks[i] = c.Publish("fwdbench/raw/checkin", 1, false, body)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, t := range toks {
		if !t.WaitTimeout(time.Until(deadline)) || t.Error() != nil {
			return Result{}, fmt.Errorf("fwdbench: raw publish: %v", t.Error())
		}
	}
	return Result{N: n, Elapsed: time.Since(start)}, nil
}

// RawRequestReply is the yardstick of a drain: what the broker and paho
// give for a checkin that needs an answer. One paho client publishes n
// checkin-sized messages at QoS 1 with at most window unanswered, the same
// fake central as Drain's answers each with a Result, and the client counts
// the Results; it returns when all n came back. The forwarder's drain does
// the same exchange plus its outbox (reading, marking, deleting), so the
// ratio of the two is what the kiosk's own work costs. window 0 is the
// forwarder's default.
func RawRequestReply(ctx context.Context, broker string, n, window int) (Result, error) {
	if window <= 0 {
		window = mqttfwd.DefaultWindow
	}
	const device = "fwdbench-rr"
	ce, err := StartCentral(broker, Prefix)
	if err != nil {
		return Result{}, err
	}
	defer ce.Close()
	c, err := connect(broker, fmt.Sprintf("fwdbench-rr-%d", time.Now().UnixNano()), true, true)
	if err != nil {
		return Result{}, err
	}
	defer c.Disconnect(100)
	unanswered := make(chan struct{}, window)
	all := make(chan struct{})
	var answered atomic.Int64
	onResult := func(mqtt.Client, mqtt.Message) {
		switch k := answered.Add(1); {
		case k < int64(n):
			<-unanswered
		case k == int64(n):
			<-unanswered
			close(all)
		}
	}
	t := c.Subscribe(protocol.Topic(Prefix, device, protocol.KindResult), 1, onResult)
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return Result{}, fmt.Errorf("fwdbench: request-reply subscribe: %v", t.Error())
	}
	topic := protocol.Topic(Prefix, device, protocol.KindCheckin)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = sampleCheckin(device, int64(i+1))
	}
	deadline := time.After(5 * time.Minute)
	start := time.Now()
	for i := range n {
		select {
		case unanswered <- struct{}{}:
		case <-deadline:
			return Result{}, fmt.Errorf("fwdbench: request-reply: %d of %d answered after 5 minutes", answered.Load(), n)
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		c.Publish(topic, 1, false, bodies[i])
	}
	select {
	case <-all:
	case <-deadline:
		return Result{}, fmt.Errorf("fwdbench: request-reply: %d of %d answered after 5 minutes", answered.Load(), n)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	return Result{N: n, Elapsed: time.Since(start)}, nil
}

func sampleCheckin(device string, seq int64) []byte {
	return protocol.Checkin{ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", DeviceID: device, Seq: seq,
		ChipNumber: "042F51B2712380", EventID: "evt-7781", CounterID: "balie-geel",
		TappedAt: "2026-11-24T09:12:33.481Z", ClockSynced: true, BootID: "3f6c0e7a-2b1d-4c55-9a0e-6f1b2c3d4e5f",
		UptimeMs: 123456}.Encode()
}

// Central is a fake central: it answers every checkin under prefix with a
// "saved" Result.
type Central struct {
	c        mqtt.Client
	prefix   string
	Received atomic.Int64
	// Status, when set, is the status each checkin's Result gets (default
	// saved); "" sends no Result. Set it before checkins arrive.
	Status func(protocol.Checkin) string
}

// StartCentral connects a fake central to broker.
func StartCentral(broker, prefix string) (*Central, error) {
	if prefix == "" {
		prefix = protocol.DefaultPrefix
	}
	// Handlers in order on paho's router goroutine: a goroutine per message
	// would have thousands of them queueing for the one outgoing channel.
	c, err := connect(broker, fmt.Sprintf("fwdbench-central-%d", time.Now().UnixNano()), true, true)
	if err != nil {
		return nil, err
	}
	ce := &Central{c: c, prefix: prefix}
	t := c.Subscribe(prefix+"/+/checkin", 1, ce.onCheckin)
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("fwdbench: central subscribe: %v", t.Error())
	}
	return ce, nil
}

func (ce *Central) onCheckin(c mqtt.Client, m mqtt.Message) {
	ck, err := protocol.DecodeCheckin(m.Payload())
	if err != nil {
		return
	}
	ce.Received.Add(1)
	st := protocol.StatusSaved
	if ce.Status != nil {
		if st = ce.Status(ck); st == "" {
			return
		}
	}
	r := protocol.Result{ID: ck.ID, Status: st, NewPoints: 1, TotalPoints: int(ck.Seq)}
	c.Publish(protocol.Topic(ce.prefix, ck.DeviceID, protocol.KindResult), 1, false, r.Encode())
}

// Close disconnects the fake central.
func (ce *Central) Close() { ce.c.Disconnect(100) }

// Backlog fills a fresh outbox in dir with n checkins for device.
func Backlog(ctx context.Context, dir, device string, n int) (*queue.Outbox, error) {
	ob, err := queue.Open(filepath.Join(dir, "drain.db"), queue.Opts{MinFreeBytes: -1})
	if err != nil {
		return nil, err
	}
	for i := range n {
		_, err := ob.Enqueue(ctx, queue.Entry{Chip: fmt.Sprintf("04%012X", i), EventID: "evt-7781", Bucket: "DAY:2026-11-24",
			Build: func(id string, seq int64) ([]byte, error) {
				return protocol.Checkin{ID: id, DeviceID: device, Seq: seq, ChipNumber: fmt.Sprintf("04%012X", i),
					EventID: "evt-7781", CounterID: "balie-geel", TappedAt: "2026-11-24T09:12:33.481Z",
					ClockSynced: true, BootID: "3f6c0e7a-2b1d-4c55-9a0e-6f1b2c3d4e5f", UptimeMs: 123456}.Encode(), nil
			}})
		if err != nil {
			ob.Close()
			return nil, err
		}
	}
	return ob, nil
}

// Drain fills an outbox in dir with n checkins (not timed), then times a
// Forwarder with the given window (0 = default) from Run until central's
// Results have emptied the outbox. The traffic is under Prefix.
func Drain(ctx context.Context, broker, dir string, n, window int) (Result, mqttfwd.Counters, error) {
	const device = "fwdbench-kiosk"
	if dir == "" {
		d, err := os.MkdirTemp("", "fwdbench")
		if err != nil {
			return Result{}, mqttfwd.Counters{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ob, err := Backlog(ctx, dir, device, n)
	if err != nil {
		return Result{}, mqttfwd.Counters{}, err
	}
	defer ob.Close()
	ce, err := StartCentral(broker, Prefix)
	if err != nil {
		return Result{}, mqttfwd.Counters{}, err
	}
	defer ce.Close()
	var answered atomic.Int64
	all := make(chan struct{})
	f, err := mqttfwd.New(ob, mqttfwd.Opts{Broker: broker, Prefix: Prefix, DeviceID: device, Window: window,
		OnResult: func(_ protocol.Result, known bool) {
			if known && answered.Add(1) == int64(n) {
				close(all)
			}
		}})
	if err != nil {
		return Result{}, mqttfwd.Counters{}, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- f.Run(rctx) }()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		cancel()
		<-runErr
		return Result{}, f.Counters(), errors.New("fwdbench: drain did not finish within 5 minutes")
	case <-ctx.Done():
		<-runErr
		return Result{}, f.Counters(), ctx.Err()
	}
	el := time.Since(start)
	cancel()
	<-runErr
	st, err := ob.Stats(ctx)
	if err != nil {
		return Result{}, f.Counters(), err
	}
	if st.Pending != 0 {
		return Result{}, f.Counters(), fmt.Errorf("fwdbench: %d checkins left after the drain", st.Pending)
	}
	return Result{N: n, Elapsed: el}, f.Counters(), nil
}
