package queue

import (
	"context"
	"testing"
)

func report(b *testing.B, l Latency) {
	b.ReportMetric(float64(l.P50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l.P99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(l.Max.Nanoseconds()), "max-ns")
}

// BenchmarkEnqueue times the tap path's durable write (checkin + history row).
// Compare its p99-ns with BenchmarkBareInsert's (target: at most 2×).
func BenchmarkEnqueue(b *testing.B) {
	l, err := MeasureEnqueue(context.Background(), b.TempDir(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, l)
}

// BenchmarkBareInsert times a durable single-row INSERT with the same pragmas.
func BenchmarkBareInsert(b *testing.B) {
	l, err := MeasureBareInsert(context.Background(), b.TempDir(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, l)
}

// BenchmarkUsed times the constraint pre-filter's lookup.
func BenchmarkUsed(b *testing.B) {
	ob := openTest(b, "", Opts{})
	for range 1000 {
		mustEnqueue(b, ob, entry("042F51B2712380", "B"))
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ob.Used(ctx, "042F51B2712380", "evt-1", "B"); err != nil {
			b.Fatal(err)
		}
	}
}
