package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/protocol"
)

// BenchmarkLedgerBatch books new checkins (distinct chips, enrolled on the
// fly) in transactions of different sizes, on disk, and reports checkins/s.
// The batch-of-1 case is what a writer without batching would get.
func BenchmarkLedgerBatch(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, size := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, size), func(b *testing.B) {
				o := DefaultOpts()
				o.EnrollUnknown = true
				o.Synchronous = sync
				l := openLedger(b, o)
				if err := l.UpsertEvent(context.Background(), Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1}); err != nil {
					b.Fatal(err)
				}
				at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
				in := make([]Input, size)
				n := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for j := range in {
						n++
						c := protocol.Checkin{V: 1, ID: newID(b), DeviceID: "kiosk-bench-01", Seq: int64(n),
							ChipNumber: fmt.Sprintf("04%012X", n), EventID: "evt-1", TappedAt: protocol.FormatTime(at),
							ClockSynced: true, BootID: "b", UptimeMs: int64(n)}
						in[j] = Input{Checkin: c, ReceivedAt: at}
					}
					if _, err := l.ProcessBatch(context.Background(), in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "checkins/s")
			})
		}
	}
}

// BenchmarkServiceEndToEnd publishes checkins from 10 kiosks through a real
// broker and waits for every Result: checkins/s through MQTT, batching and
// the fsync per batch. The broker's per-client in-flight window (100 in
// testbroker) bounds a batch, since checkins are acknowledged after commit.
func BenchmarkServiceEndToEnd(b *testing.B) {
	br := testbroker.Start(b)
	o := DefaultOpts()
	o.EnrollUnknown = true
	l := openLedger(b, o)
	svc, _ := runService(b, l, ServiceOpts{Broker: br.URL(), Logger: slog.New(slog.DiscardHandler)})
	res := subscribeResults(b, br.URL())
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
	for k := 0; k < kiosks; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last mqtt.Token
			for i := k; i < b.N; i += kiosks {
				last = clients[k].Publish(protocol.Topic(prefix, fmt.Sprintf("kiosk-bench-%02d", k), protocol.KindCheckin), 1, false, payloads[i])
			}
			if last != nil {
				last.WaitTimeout(time.Minute)
			}
		}()
	}
	wg.Wait()
	res.wait(b, ids...)
	b.StopTimer()
	c := svc.Counters()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
	b.ReportMetric(float64(c.Results)/float64(max(c.Batches, 1)), "checkins/batch")
}
