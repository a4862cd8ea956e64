package pn532

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

type countHandler struct {
	n          int
	suppressed []int64
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.n++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			h.suppressed = append(h.suppressed, a.Value.Int64())
		}
		return true
	})
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func TestLimiter(t *testing.T) {
	h := &countHandler{}
	log := slog.New(h)
	l := limiter{every: time.Minute}
	t0 := time.Unix(0, 0)
	err := errors.New("boom")
	for i := range 100 {
		l.log(log, t0.Add(time.Duration(i)*time.Second), "poll", slog.LevelWarn, "poll failed", err)
	}
	l.log(log, t0, "init", slog.LevelError, "init failed", err) // another key logs at once
	if h.n != 3 {
		t.Fatalf("%d lines for 100 repeats over 100 s and one other error, want 3", h.n)
	}
	if h.suppressed[1] != 59 {
		t.Errorf("second line says %d suppressed, want 59", h.suppressed[1])
	}
}

func TestBackoff(t *testing.T) {
	o := Opts{Backoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := backoff(o, i+1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := backoff(o, 50); got != 30*time.Second {
		t.Errorf("backoff(50) = %v, want the cap", got)
	}
}
