package fleetsim

import (
	"context"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
)

// TestFleetUnderChaos: 50 kiosks in one process tap against a Mosquitto that
// restarts, while kiosks go down and come back and the ingest stops for a
// while; after the drain every saved tap is in the ledger exactly once.
func TestFleetUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet run in -short mode")
	}
	if testbroker.Mosquitto() == "" {
		t.Skip("the fleet run restarts a Mosquitto: none installed")
	}
	sum, err := Run(context.Background(), Opts{
		Kiosks: 50, Rate: 2, Duration: 8 * time.Second, Dir: t.TempDir(), Seed: 7,
		BrokerRestartEvery: 4 * time.Second, BrokerDown: time.Second,
		KillEvery: time.Second, KillDown: 500 * time.Millisecond,
		IngestDownAt: 1500 * time.Millisecond, IngestDown: time.Second,
		DrainTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", sum)
	if sum.Lost != 0 || sum.Duplicates != 0 {
		t.Fatalf("lost %d, duplicates %d", sum.Lost, sum.Duplicates)
	}
	if sum.Saved < 300 || sum.Booked == 0 || sum.AlreadySaved == 0 || sum.Blocked == 0 {
		t.Fatalf("the tap mix did not happen: %+v", sum)
	}
	if sum.BrokerRestarts == 0 || sum.KioskKills == 0 || sum.IngestStops != 1 {
		t.Fatalf("the chaos did not happen: %+v", sum)
	}
}
