package fleetsim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/fleetsim"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/reader"
)

// upHandler closes up when the fleet simulator logs that its fleet is up.
type upHandler struct {
	slog.Handler
	up chan struct{}
}

func (h upHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "fleet up" {
		select {
		case <-h.up:
		default:
			close(h.up)
		}
	}
	return nil
}

// probe is one more kiosk beside the fleet (the real assembly), with
// tap.await_result as given.
type probe struct {
	k       *kiosk.Kiosk
	results chan string // ids of central's Results
	lat     []time.Duration
	n       int // taps answered first by central
}

func startProbe(b *testing.B, device, broker string, await time.Duration) *probe {
	c := provisioning.Default()
	c.DeviceID, c.StateDir, c.Path = device, filepath.Join(b.TempDir(), device), "bench"
	c.Event.ID, c.Event.Title, c.Event.CounterID = "evt-fleet", "Fleet", "balie-fleet"
	c.Control.Socket = "" // taps through the presenter, as the simulator's own
	c.MQTT.Broker, c.MQTT.AllowInsecure = broker, true
	c.Display.SpaarcodeEvery = -1
	c.Queue.ReserveBytes = 0
	c.Tap.AwaitResult = await
	p := &probe{results: make(chan string, 64)}
	ready := make(chan struct{})
	k, err := kiosk.New(c, kiosk.Opts{Version: "bench", OnReady: func() { close(ready) },
		OnResult: func(r protocol.Result, _ bool) {
			select {
			case p.results <- r.ID:
			default:
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	<-ready
	p.k = k
	waitfor.CondWithin(b, time.Minute, device+" connected", func() bool { return k.Forwarder().Connected() })
	return p
}

// tap taps chip, records the time to the first feedback, and returns once
// central's Result is in (the next passholder steps up after this one's
// answer), or after 10 s.
func (p *probe) tap(b *testing.B, chip string) {
	uid, _ := reader.ParseChip(chip)
	ch, stop := p.k.Core().Expect(chip)
	defer stop()
	t0 := time.Now()
	if err := p.k.Presenter().Present(context.Background(), uid); err != nil {
		b.Fatal(err)
	}
	d := <-ch
	p.lat = append(p.lat, time.Since(t0))
	if d.Result != "" {
		p.n++
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case id := <-p.results:
			if id == d.ID {
				return
			}
		case <-timeout.C:
			return
		}
	}
}

// BenchmarkTapOnlineFleet measures the time from a tap to its first
// feedback at a kiosk beside the fleet simulator's 1000 kiosks, which tap
// against the same broker and ingest (a tap every 2 s each). Two such
// kiosks take turns, one passholder after the other's answer: one with
// tap.await_result at its default (300 ms: p50-ms, p99-ms, answered-% the
// taps whose first feedback was central's answer; target p99 ≤ 400 ms), one
// with 0 (at-once-p50-ms, at-once-p99-ms: the same load without waiting).
// The ingest answers these kiosks' taps with event-not-found (the simulator
// assigns its event to its own kiosks only): the same round trip, a ledger
// row each.
func BenchmarkTapOnlineFleet(b *testing.B) {
	broker := testbroker.Start(b)
	up := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	fleetDone := make(chan error, 1)
	go func() {
		_, err := fleetsim.Run(ctx, fleetsim.Opts{Kiosks: 1000, Rate: 0.5, Duration: time.Hour, Broker: broker.URL(),
			Seed: 13, Logger: slog.New(upHandler{slog.NewTextHandler(io.Discard, nil), up})})
		fleetDone <- err
	}()
	defer func() {
		cancel()
		if err := <-fleetDone; err != nil && !errors.Is(err, context.Canceled) {
			b.Logf("fleet: %v", err)
		}
	}()
	select {
	case <-up:
	case err := <-fleetDone:
		b.Fatalf("fleet: %v", err)
	case <-time.After(30 * time.Minute):
		b.Fatal("the fleet simulator did not log \"fleet up\" within 30 minutes")
	}
	await := startProbe(b, "probe-await", broker.URL(), provisioning.Default().Tap.AwaitResult)
	atOnce := startProbe(b, "probe-at-once", broker.URL(), 0)
	i := 0
	for b.Loop() {
		await.tap(b, fmt.Sprintf("04B0BE%08X", i))
		atOnce.tap(b, fmt.Sprintf("04B0BF%08X", i))
		i++
	}
	l, o := queue.Summarise(await.lat), queue.Summarise(atOnce.lat)
	b.ReportMetric(float64(l.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.P99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(100*float64(await.n)/float64(len(await.lat)), "answered-%")
	b.ReportMetric(float64(o.P50.Microseconds())/1000, "at-once-p50-ms")
	b.ReportMetric(float64(o.P99.Microseconds())/1000, "at-once-p99-ms")
}
