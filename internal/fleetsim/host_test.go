package fleetsim

import (
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/device/host"
)

// countingHost counts the readings of the clock's synchronisation.
type countingHost struct {
	host.Fixed
	reads int
}

func (h *countingHost) ClockSynced() bool { h.reads++; return h.Synced }

// TestFleetHostSharesOneReading: the fleet's kiosks share a reading for
// fleetHostRefresh, and a change of the kernel's answer shows after it.
func TestFleetHostSharesOneReading(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	inner := &countingHost{Fixed: host.Fixed{Synced: true, Boot: "boot-1"}}
	h := newFleetHost(inner, func() time.Time { return now })
	for range 1000 { // a fleet's cores at one tick
		if !h.ClockSynced() {
			t.Fatal("not synced")
		}
	}
	if inner.reads != 1 {
		t.Fatalf("%d readings for one tick of the fleet, want 1", inner.reads)
	}
	inner.Synced = false
	now = now.Add(fleetHostRefresh - time.Millisecond)
	if !h.ClockSynced() {
		t.Fatal("a reading younger than fleetHostRefresh was not used")
	}
	now = now.Add(time.Millisecond)
	if h.ClockSynced() {
		t.Fatal("the change of the kernel's answer did not show after fleetHostRefresh")
	}
	if inner.reads != 2 || h.BootID() != "boot-1" {
		t.Fatalf("reads %d, boot id %q", inner.reads, h.BootID())
	}
}
