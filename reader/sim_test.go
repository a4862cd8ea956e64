package reader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
)

func TestSimDeliversTapsAndHealth(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	s := NewSim(clk)
	events := make(chan Event, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, events) }()
	uid, _ := ParseChip("04:a1:b2:c3:d4:e5:f6")
	if err := s.Present(ctx, uid); err != nil {
		t.Fatal(err)
	}
	ev := <-events
	if ev.Tap == nil || ev.Tap.Chip() != "04A1B2C3D4E5F6" || !ev.Tap.At.Equal(clk.Now()) {
		t.Fatalf("event %+v", ev)
	}
	s.SetHealth(ctx, Health{State: Fault, Err: errors.New("x")})
	if ev := <-events; ev.Health == nil || ev.Health.State != Fault || ev.Health.State.String() != "fault" {
		t.Fatalf("health %+v", ev)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	short, c2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer c2()
	if err := s.Present(short, uid); err == nil {
		t.Fatal("Present without a running reader succeeded")
	}
}
