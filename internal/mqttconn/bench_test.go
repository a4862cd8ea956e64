package mqttconn

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWrite writes bursts of PUBACK-sized packets to a loopback TCP
// peer that reads them, plainly and through the coalescer: processor time
// per packet (this process, both ends), the figure the ingest pays, and the
// writes that reach the connection per packet (each a system call).
func BenchmarkWrite(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{{"plain", func(c net.Conn) net.Conn { return c }}, {"gathered", func(c net.Conn) net.Conn { return newCoalescer(c, Central.gatherRounds()) }}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			got := make(chan int64, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- 0
					return
				}
				n, _ := io.Copy(io.Discard, c)
				got <- n
			}()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			raw := &writeCounter{Conn: conn}
			c := tc.wrap(raw)
			p := []byte{0x40, 0x02, 0x00, 0x01}
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			t0 := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(p); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			n := <-got
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			if n != int64(b.N*len(p)) {
				b.Fatalf("peer read %d bytes of %d", n, b.N*len(p))
			}
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/packet")
			b.ReportMetric(float64(time.Since(t0).Nanoseconds())/float64(b.N), "wall-ns/packet")
			raw.mu.Lock()
			b.ReportMetric(float64(raw.writes)/float64(b.N), "writes/packet")
			raw.mu.Unlock()
		})
	}
}
