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
// fly) in transactions of different sizes, on disk, and reports checkins/s,
// for each backend (PostgreSQL when reachable, see backend_test.go). The
// batch-of-1 case is what a writer without batching would get. On
// PostgreSQL, sync=NORMAL is synchronous_commit=off.
func BenchmarkLedgerBatch(b *testing.B) {
	for _, be := range backends {
		for _, sync := range []string{"FULL", "NORMAL"} {
			for _, size := range []int{1, 16, 256} {
				b.Run(fmt.Sprintf("db=%s/sync=%s/batch=%d", be.name, sync, size), func(b *testing.B) {
					o := DefaultOpts()
					o.EnrollUnknown = true
					o.Synchronous = sync
					l := openAt(b, be.dsn(b), o)
					benchBatches(b, []*Ledger{l}, size)
				})
			}
		}
	}
}

// BenchmarkLedgerInstances is several writers (each its own Ledger, as
// separate ingest processes would be) booking distinct chips into one
// database at once: what the PostgreSQL ledger gains from a second and a
// fourth instance, and what SQLite's one-writer-at-a-time costs.
func BenchmarkLedgerInstances(b *testing.B) {
	for _, be := range backends {
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("db=%s/instances=%d/batch=64", be.name, n), func(b *testing.B) {
				o := DefaultOpts()
				o.EnrollUnknown = true
				dsn := be.dsn(b)
				ls := make([]*Ledger, n)
				for i := range ls {
					ls[i] = openAt(b, dsn, o)
				}
				benchBatches(b, ls, 64)
			})
		}
	}
}

// benchBatches books b.N batches of size new checkins, spread over ls
// (writing concurrently), and reports checkins/s.
func benchBatches(b *testing.B, ls []*Ledger, size int) {
	if err := ls[0].UpsertEvent(context.Background(), Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1}); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	batches := make(chan []Input, len(ls))
	go func() {
		defer close(batches)
		n := 0
		for i := 0; i < b.N; i++ {
			in := make([]Input, size)
			for j := range in {
				n++
				c := protocol.Checkin{V: 1, ID: newID(b), DeviceID: "kiosk-bench-01", Seq: int64(n),
					ChipNumber: fmt.Sprintf("04%012X", n), EventID: "evt-1", TappedAt: protocol.FormatTime(at),
					ClockSynced: true, BootID: "b", UptimeMs: int64(n)}
				in[j] = Input{Checkin: c, ReceivedAt: at}
			}
			batches <- in
		}
	}()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			for in := range batches {
				if _, err := l.ProcessBatch(context.Background(), in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "checkins/s")
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
