package pn532

import (
	"testing"
	"time"
)

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
