package ingest

import "testing"

// TestNoAnalyzeAfterClose: a batch booked while the ledger closes starts no
// ANALYZE (it would be added to the wait group Close waits on, and run on
// a closed pool; here, on no ledger at all).
func TestNoAnalyzeAfterClose(t *testing.T) {
	a := &analyzer{on: true, due: 1}
	a.close()
	a.booked(1000)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || a.total != 0 {
		t.Fatalf("after close: running %v, %d checkins counted", a.running, a.total)
	}
}
