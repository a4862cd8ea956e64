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
