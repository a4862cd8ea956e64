package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// BenchmarkFlush1000 writes a Status change of each of 1 000 kiosks in one
// Feeder flush, per backend: with the Feeder's 250 ms pace, what a change
// takes to be visible in the registry (and so in `fleet`) at that load.
func BenchmarkFlush1000(b *testing.B) {
	for _, be := range backends {
		b.Run("db="+be.name, func(b *testing.B) {
			r, _ := openRegistry(b, be.dsn(b))
			f := r.NewFeeder(FeederOpts{})
			at := t0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				at = at.Add(time.Second)
				for k := range 1000 {
					s := protocol.Status{V: 1, Online: true, DeviceID: fmt.Sprintf("kiosk-b-%04d", k), Version: "1.0.0",
						Pending: i % 5, ClockSynced: true, Reader: "ok", Display: "ok", At: protocol.FormatTime(at)}
					f.Status(s, s.Encode(), at, false)
				}
				if !f.Flush(context.Background()) {
					b.Fatal("flush failed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/1000-statuses")
		})
	}
}
