package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

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
