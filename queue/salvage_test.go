package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// setAside makes a damaged queue: n checkins, then damage, then SetAside.
func damagedQueue(t *testing.T, n int, damage func(path string)) (aside, path string, items []Item) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "queue.db")
	items = filledQueue(t, p, n)
	damage(p)
	if _, err := Open(p, Opts{}); !errors.Is(err, ErrUnusable) {
		t.Fatalf("damaged queue opened: %v", err)
	}
	aside, err := SetAside(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return aside, p, items
}

// salvageInto opens a fresh queue at path (with its seq file) and
// salvages src into it, as the kiosk does after SetAside.
func salvageInto(t *testing.T, src, path string) (*Outbox, int, error) {
	t.Helper()
	dst := openTest(t, path, Opts{MinFreeBytes: -1, SeqFile: seqFileFor(path)})
	n, err := Salvage(src, dst)
	t.Logf("salvaged %d: %v", n, err)
	return dst, n, err
}

// checkSalvaged checks that every pending checkin of dst is one of items,
// unchanged, and returns the set of seqs salvaged.
func checkSalvaged(t *testing.T, dst *Outbox, items []Item, n int) map[int64]bool {
	t.Helper()
	got, err := dst.Pending(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("pending %d, salvage said %d", len(got), n)
	}
	bySeq := map[int64]Item{}
	for _, it := range items {
		bySeq[it.Seq] = it
	}
	seqs := map[int64]bool{}
	for _, g := range got {
		w, ok := bySeq[g.Seq]
		if !ok || w.ID != g.ID || string(w.Body) != string(g.Body) || w.QueuedAt.UnixMilli() != g.QueuedAt.UnixMilli() {
			t.Fatalf("salvaged %+v, original %+v", g, w)
		}
		seqs[g.Seq] = true
	}
	// seq continues above everything salvaged.
	if it := mustEnqueue(t, dst, entry("042F51B2712380", "B")); it.Seq <= int64(len(items)) {
		t.Fatalf("next seq %d after salvaging up to %d", it.Seq, len(items))
	}
	return seqs
}

// A corrupt leaf page in the middle costs exactly the checkins on it.
func TestSalvageCorruptPage(t *testing.T) {
	const n = 3000
	var lost int
	src, path, items := damagedQueue(t, n, func(p string) {
		leaves := leafPages(t, p, "checkin")
		bad := leaves[len(leaves)/2]
		lost = bad[1]
		overwritePage(t, p, bad[0])
		t.Logf("%d checkin leaves; page %d with %d cells overwritten", len(leaves), bad[0], bad[1])
	})
	c, err := CountPending(src)
	t.Logf("CountPending = %d, %v", c, err)
	if c != n-lost || err == nil {
		t.Errorf("CountPending = %d, %v; want %d and an error saying it may be short", c, err, n-lost)
	}
	dst, got, err := salvageInto(t, src, path)
	if got != n-lost || err == nil {
		t.Fatalf("salvaged %d (%v), want %d and an error about the lost page", got, err, n-lost)
	}
	seqs := checkSalvaged(t, dst, items, got)
	if !seqs[1] || !seqs[n] {
		t.Fatalf("first or last checkin missing: the scan did not go past the bad page")
	}
	// History came along: the pre-filter still counts the salvaged taps.
	if u, _ := dst.Used(context.Background(), "04000000000000", "evt-1", "D2026-11-24"); u != 1 {
		t.Errorf("history of the first checkin: %d", u)
	}
	// The set-aside file was not written.
	if _, err := os.Stat(src + "-wal"); err == nil {
		if st, _ := os.Stat(src + "-wal"); st.Size() > 0 {
			t.Errorf("salvage wrote to the set-aside WAL")
		}
	}
}

// Truncated mid-file: what lies before the cut comes back.
func TestSalvageTruncated(t *testing.T) {
	const n = 3000
	src, path, items := damagedQueue(t, n, func(p string) {
		st, _ := os.Stat(p)
		if err := os.Truncate(p, st.Size()*6/10/4096*4096); err != nil {
			t.Fatal(err)
		}
	})
	dst, got, err := salvageInto(t, src, path)
	if got == 0 || got >= n || err == nil {
		t.Fatalf("salvaged %d of %d from a truncated file (%v)", got, n, err)
	}
	checkSalvaged(t, dst, items, got)
	if c, _ := CountPending(src); c != got {
		t.Errorf("CountPending %d, salvaged %d", c, got)
	}
}

// A healthy database (a reset -force on a good queue) counts exactly, and
// salvaging it twice copies nothing the second time.
func TestSalvageHealthy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "queue.db")
	items := filledQueue(t, p, 500)
	if c, err := CountPending(p); c != 500 || err != nil {
		t.Fatalf("CountPending = %d, %v", c, err)
	}
	dst, got, err := salvageInto(t, p, filepath.Join(t.TempDir(), "queue.db"))
	if got != 500 || err != nil {
		t.Fatalf("salvaged %d, %v", got, err)
	}
	if again, err := Salvage(p, dst); again != 0 || err != nil {
		t.Fatalf("second salvage: %d, %v", again, err)
	}
	checkSalvaged(t, dst, items, 500)
	if _, err := CountPending(filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Fatal("CountPending of a missing file")
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, make([]byte, 8192), 0o600)
	if n, err := Salvage(junk, dst); n != 0 || err == nil {
		t.Fatalf("salvage of junk: %d, %v", n, err)
	}
}
