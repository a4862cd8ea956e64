package ratelog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOneLinePerKeyAndIntervalWithCount(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := New(10 * time.Second)
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	var logged []bool
	for i, at := range []time.Duration{0, time.Second, 2 * time.Second, 11 * time.Second} {
		logged = append(logged, l.Log(log, t0.Add(at), slog.LevelWarn, "poll", "poll failed", "n", i))
	}
	if want := []bool{true, false, false, true}; !slices.Equal(logged, want) {
		t.Fatalf("logged %v, want %v", logged, want)
	}
	if !l.Log(log, t0.Add(time.Second), slog.LevelError, "other", "other key") {
		t.Fatal("another key was held back")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[1], "suppressed=2") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}

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

// TestLimiterOverAMinute: the PN532 driver's case, a poll failing every
// second for 100 s.
func TestLimiterOverAMinute(t *testing.T) {
	h := &countHandler{}
	log := slog.New(h)
	l := New(time.Minute)
	t0 := time.Unix(0, 0)
	err := errors.New("boom")
	for i := range 100 {
		l.Log(log, t0.Add(time.Duration(i)*time.Second), slog.LevelWarn, "poll", "poll failed", "err", err)
	}
	l.Log(log, t0, slog.LevelError, "init", "init failed", "err", err) // another key logs at once
	if h.n != 3 {
		t.Fatalf("%d lines for 100 repeats over 100 s and one other error, want 3", h.n)
	}
	// Only a line that follows left-out ones carries a count.
	if len(h.suppressed) != 1 || h.suppressed[0] != 59 {
		t.Errorf("suppressed counts %v, want [59] on the second line", h.suppressed)
	}
}
