package mqttfwd_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd/fwdbench"
)

// BenchmarkRawPublish10k is the yardstick: paho QoS 1 publishes of 10 000
// checkin-sized messages to the broker, until every PUBACK.
func BenchmarkRawPublish10k(b *testing.B) {
	br := testbroker.Start(b)
	var rate float64
	for range b.N {
		r, err := fwdbench.RawPublish(context.Background(), br.URL(), 10000)
		if err != nil {
			b.Fatal(err)
		}
		rate += r.PerSec()
	}
	b.ReportMetric(rate/float64(b.N), "msgs/s")
}

// BenchmarkRawRequestReply10k is the drain's yardstick: 10 000 checkin-sized
// requests answered by the fake central, the forwarder's window unanswered
// at most, raw paho on both sides.
func BenchmarkRawRequestReply10k(b *testing.B) {
	br := testbroker.Start(b)
	var rate float64
	for range b.N {
		r, err := fwdbench.RawRequestReply(context.Background(), br.URL(), 10000, benchWindow())
		if err != nil {
			b.Fatal(err)
		}
		rate += r.PerSec()
	}
	b.ReportMetric(rate/float64(b.N), "msgs/s")
}

// BenchmarkDrain10k drains a backlog of 10 000 checkins through a fake
// central; a checkin counts when its Result deleted it from the outbox.
func BenchmarkDrain10k(b *testing.B) {
	br := testbroker.Start(b)
	var rate float64
	for range b.N {
		r, c, err := fwdbench.Drain(context.Background(), br.URL(), b.TempDir(), 10000, benchWindow())
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%v %+v", r, c)
		rate += r.PerSec()
	}
	b.ReportMetric(rate/float64(b.N), "msgs/s")
}

// benchWindow is a kiosk's window, provisioning's default mqtt.window (256,
// not Opts' fallback of 64): the drain is measured as kiosks run it.
// MQTTFWD_BENCH_WINDOW tries others (64 for the fallback); 0 or a value
// that is not a number is the default.
func benchWindow() int {
	if n, err := strconv.Atoi(os.Getenv("MQTTFWD_BENCH_WINDOW")); err == nil && n > 0 {
		return n
	}
	return provisioning.Default().MQTT.Window
}
