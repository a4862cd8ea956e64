package host

import "testing"

func TestInfoReadsKernel(t *testing.T) {
	h := New()
	if h.BootID() == "" {
		t.Fatal("empty boot id")
	}
	if h.Uptime() <= 0 {
		t.Fatalf("uptime %v", h.Uptime())
	}
	t.Logf("boot %s synced %v uptime %v", h.BootID(), h.ClockSynced(), h.Uptime())
}

// TestSyncedByMaxError: synchronised is a maximum error under 16 s, as
// timedatectl judges it, whatever STA_UNSYNC says (chrony without rtcsync
// keeps it set on a synchronised clock).
func TestSyncedByMaxError(t *testing.T) {
	for _, tc := range []struct {
		us   int64
		want bool
	}{{0, true}, {500_000, true}, {15_999_999, true}, {16_000_000, false}, {16_000_001, false}, {-1, false}} {
		if got := syncedByMaxError(tc.us); got != tc.want {
			t.Errorf("maxerror %d µs: synced %v, want %v", tc.us, got, tc.want)
		}
	}
}
