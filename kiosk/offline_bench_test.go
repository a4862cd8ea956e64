package kiosk

import (
	"fmt"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/queue"
)

// BenchmarkTapOffline measures a tap through the control socket with the
// link down (a broker address nobody listens on): the first feedback must
// come as fast as before tap.await_result, which waits only while the link
// is up.
func BenchmarkTapOffline(b *testing.B) {
	cfg := testConfig(b, b.TempDir(), fmt.Sprintf("tcp://127.0.0.1:%d", testbroker.FreePort(b)))
	runKiosk(b, cfg, Opts{})
	lat := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		t0 := time.Now()
		r := tap(b, cfg.Control.Socket, fmt.Sprintf("04CAFE%08X", i))
		lat = append(lat, time.Since(t0))
		if r.Screen != "saved" {
			b.Fatalf("tap %d: %+v", i, r)
		}
		i++
	}
	l := queue.Summarise(lat)
	b.ReportMetric(float64(l.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.P99.Microseconds()), "p99-µs")
}
