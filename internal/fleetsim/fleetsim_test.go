package fleetsim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/device"
)

// TestFleetUnderChaos: 50 kiosks in one process tap against a broker that
// restarts (Mosquitto, or the embedded broker where none is installed),
// while kiosks go down and come back and the ingest stops for a while; after
// the drain every saved tap is in the ledger exactly once.
func TestFleetUnderChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet run in -short mode")
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

// TestShardsReconcileAgainstTheParentsLedger: with Processes, the kiosks
// run in shards against this run's broker, ingest and SQLite ledger, and
// every saved tap is found booked once (the shards run in this process
// here, through Spawn, as the command runs them in others).
func TestShardsReconcileAgainstTheParentsLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet run in -short mode")
	}
	sum, err := Run(context.Background(), Opts{
		Kiosks: 6, Processes: 2, Rate: 2, Duration: 2 * time.Second, Dir: t.TempDir(), Seed: 3,
		DrainTimeout: time.Minute,
		Spawn:        func(ctx context.Context, o Opts) (Summary, error) { return Run(ctx, o) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Saved == 0 || sum.Lost != 0 || sum.Duplicates != 0 || sum.LedgerRows != sum.Saved {
		t.Fatalf("%+v", sum)
	}
	// Central's share of the wait is measured where the ingest runs.
	if sum.CentralP99Ms <= 0 || sum.CentralP50Ms > sum.CentralP99Ms || sum.CentralP99Ms > sum.ResultP99Ms+1 {
		t.Fatalf("central's share p50 %v ms, p99 %v ms (the kiosks' whole wait p99 %v ms)", sum.CentralP50Ms, sum.CentralP99Ms, sum.ResultP99Ms)
	}
}

// TestRunDir: each run gets a fresh directory below -dir, made when missing,
// named after the time, numbered when a run of the same second has it.
func TestRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	var got []string
	for range 3 {
		d, err := RunDir(dir, at)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(d))
	}
	want := []string{"run-20260102T140405Z", "run-20260102T140405Z-2", "run-20260102T140405Z-3"}
	if !slices.Equal(got, want) {
		t.Fatalf("run directories %q, want %q", got, want)
	}
}

// TestGate: the parent opens the gate only when every shard is up in it,
// and not at all when the shards return first; a shard waits at a shut
// gate until its context ends.
func TestGate(t *testing.T) {
	gate := t.TempDir()
	ctx := context.Background()
	returned := make(chan struct{})
	close(returned)
	if err := openGate(ctx, gate, 2, returned); !errors.Is(err, errShardReturned) {
		t.Fatalf("with a shard ended and none up: %v", err)
	}
	s := &sim{o: Opts{Shard: &Shard{First: 0, Gate: gate}}}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.waitGate(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait at a shut gate: %v", err)
	}
	if err := os.WriteFile(filepath.Join(gate, "up-100"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := openGate(ctx, gate, 2, make(chan struct{})); err != nil {
		t.Fatalf("with both shards up: %v", err)
	}
	if err := s.waitGate(ctx); err != nil {
		t.Fatalf("wait at an open gate: %v", err)
	}
}

// TestShardFailureStopsTheOthers: a shard that fails before the gate opens
// ends the run with its error; the others stop waiting at the gate.
func TestShardFailureStopsTheOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet run in -short mode")
	}
	broke := errors.New("shard broke")
	_, err := Run(context.Background(), Opts{
		Kiosks: 4, Processes: 2, Rate: 1, Duration: time.Second, Dir: t.TempDir(), DrainTimeout: time.Minute,
		Spawn: func(ctx context.Context, o Opts) (Summary, error) {
			if o.Shard.First != 0 {
				return Summary{}, broke
			}
			return Run(ctx, o)
		},
	})
	if !errors.Is(err, broke) {
		t.Fatalf("run with a broken shard: %v", err)
	}
}

// TestRetapIsNotASecondSave: the kiosk answers a card tapped again within
// its debounce window with the first tap's decision (the same ID); the
// simulator counts it as a retap, so that the saved taps stay the checkins
// the ledger must hold (a shard once counted 21 saved against 20 rows).
func TestRetapIsNotASecondSave(t *testing.T) {
	s := &sim{saved: map[string]string{}, tappedT: map[string]time.Time{}}
	n := &node{id: "kiosk-a"}
	saved := device.Decision{Outcome: device.OutcomeSaved, Chip: "04A1B2C3D4E5F6", ID: "id-1"}
	s.record(n, saved.Chip, saved)
	s.record(n, saved.Chip, saved) // debounced: the same decision again
	s.record(n, saved.Chip, device.Decision{Outcome: device.OutcomeAlreadySaved, Chip: saved.Chip})
	get := func(o string) int64 {
		v, ok := s.counts.Load(o)
		if !ok {
			return 0
		}
		return v.(*atomic.Int64).Load()
	}
	if s.taps.Load() != 3 || get(device.OutcomeSaved) != 1 || get(outcomeRetap) != 1 || get(device.OutcomeAlreadySaved) != 1 || len(s.saved) != 1 {
		t.Fatalf("taps %d, saved %d, retaps %d, already saved %d, checkins %d", s.taps.Load(),
			get(device.OutcomeSaved), get(outcomeRetap), get(device.OutcomeAlreadySaved), len(s.saved))
	}
}
