package queue

import (
	"context"
	"fmt"
	"testing"
	"syscall"
	"time"
)

func BenchmarkDoneBatchX(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			ob := openTest(b, "", Opts{})
			var items []Item
			for range b.N * n {
				items = append(items, mustEnqueue(b, ob, entry("042F51B2712380", "B")))
			}
			var r0, r1 syscall.Rusage
			syscall.Getrusage(0, &r0)
			b.ResetTimer()
			for i := range b.N {
				acks := make([]Ack, n)
				for j := range acks {
					acks[j] = Ack{ID: items[i*n+j].ID, KeepHistory: true}
				}
				if _, err := ob.DoneBatch(ctx, acks); err != nil {
					b.Fatal(err)
				}
			}
			syscall.Getrusage(0, &r1)
			cpu := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/row")
		})
	}
}
func BenchmarkPendingX(b *testing.B) {
	ctx := context.Background()
	ob := openTest(b, "", Opts{})
	for range 300 {
		mustEnqueue(b, ob, entry("042F51B2712380", "B"))
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := ob.Pending(ctx, 0, 8); err != nil {
			b.Fatal(err)
		}
	}
}
