package queue

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/protocol"
)

var t0 = time.Date(2026, 11, 24, 9, 12, 33, 0, time.UTC)

func openTest(tb testing.TB, path string, o Opts) *Outbox {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "outbox.db")
	}
	if o.Clock == nil {
		o.Clock = clock.NewFake(t0)
	}
	ob, err := Open(path, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ob.Close() })
	return ob
}

func entry(chip, bucket string) Entry {
	return Entry{Chip: chip, EventID: "evt-1", Bucket: bucket, Build: func(id string, seq int64) ([]byte, error) {
		return fmt.Appendf(nil, `{"v":1,"id":%q,"seq":%d,"chipNumber":%q}`, id, seq, chip), nil
	}}
}

func mustEnqueue(tb testing.TB, ob *Outbox, e Entry) Item {
	tb.Helper()
	it, err := ob.Enqueue(context.Background(), e)
	if err != nil {
		tb.Fatal(err)
	}
	return it
}

func TestEnqueuePendingDone(t *testing.T) {
	ctx := context.Background()
	ob := openTest(t, "", Opts{})
	a := mustEnqueue(t, ob, entry("042F51B2712380", "DAY:2026-11-24"))
	b := mustEnqueue(t, ob, entry("042F51B2712380", "DAY:2026-11-24"))
	c := mustEnqueue(t, ob, entry("04AABBCCDDEEFF", ""))
	if a.Seq != 1 || b.Seq != 2 || c.Seq != 3 {
		t.Fatalf("seqs %d %d %d", a.Seq, b.Seq, c.Seq)
	}
	if !protocol.ValidID(a.ID) || a.ID == b.ID {
		t.Fatalf("ids %q %q", a.ID, b.ID)
	}
	if !strings.Contains(string(a.Body), a.ID) || !a.QueuedAt.Equal(t0) {
		t.Fatalf("item %+v", a)
	}
	if n, err := ob.Used(ctx, "042F51B2712380", "evt-1", "DAY:2026-11-24"); err != nil || n != 2 {
		t.Fatalf("used = %d, %v", n, err)
	}
	if n, _ := ob.Used(ctx, "04AABBCCDDEEFF", "evt-1", ""); n != 0 {
		t.Fatalf("bucket \"\" wrote history: %d", n)
	}
	items, err := ob.Pending(ctx, 0, 10)
	if err != nil || len(items) != 3 || items[0].Seq != 1 || items[2].Seq != 3 || string(items[1].Body) != string(b.Body) {
		t.Fatalf("pending %+v %v", items, err)
	}
	if items, _ := ob.Pending(ctx, 1, 1); len(items) != 1 || items[0].Seq != 2 {
		t.Fatalf("pending after 1: %+v", items)
	}
	st, _ := ob.Stats(ctx)
	if st.Pending != 3 || st.LastSeq != 3 || !st.OldestQueuedAt.Equal(t0) || st.HistoryRows != 2 ||
		st.Bytes != int64(len(a.Body)+len(b.Body)+len(c.Body))+3*EntryOverhead+2*HistoryRowBytes {
		t.Fatalf("stats %+v", st)
	}

	// saved: keep history; refused: drop it.
	if ok, err := ob.Done(ctx, a.ID, true); !ok || err != nil {
		t.Fatalf("done a: %v %v", ok, err)
	}
	if ok, err := ob.Done(ctx, b.ID, false); !ok || err != nil {
		t.Fatalf("done b: %v %v", ok, err)
	}
	if ok, err := ob.Done(ctx, b.ID, false); ok || err != nil {
		t.Fatalf("done b again: %v %v", ok, err)
	}
	if n, _ := ob.Used(ctx, "042F51B2712380", "evt-1", "DAY:2026-11-24"); n != 1 {
		t.Fatalf("used after done = %d, want 1", n)
	}
	known, err := ob.DoneBatch(ctx, []Ack{{ID: "nope"}, {ID: c.ID, KeepHistory: true}})
	if err != nil || known[0] || !known[1] {
		t.Fatalf("batch %v %v", known, err)
	}
	st, _ = ob.Stats(ctx)
	// The history row of a stays (saved), and counts against MaxBytes.
	if st.Pending != 0 || st.Bytes != HistoryRowBytes || st.HistoryRows != 1 || !st.OldestQueuedAt.IsZero() || st.LastSeq != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSeqSurvivesReopenAndDeletes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, err := Open(path, Opts{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 5 {
		ids = append(ids, mustEnqueue(t, ob, entry("042F51B2712380", "B")).ID)
	}
	// Delete everything, the highest first: nothing in checkin remembers 5.
	for i := len(ids) - 1; i >= 0; i-- {
		if _, err := ob.Done(ctx, ids[i], true); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Enqueue(ctx, entry("042F51B2712380", "B")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	for _, after := range []int64{0, 5} { // from the database, from fresh
		if _, err := ob.Pending(ctx, after, 10); !errors.Is(err, ErrClosed) {
			t.Fatalf("pending after %d after close: %v", after, err)
		}
	}
	ob = openTest(t, path, Opts{})
	if it := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it.Seq != 6 {
		t.Fatalf("seq after reopen = %d, want 6", it.Seq)
	}
	if n, _ := ob.Used(ctx, "042F51B2712380", "evt-1", "B"); n != 6 {
		t.Fatalf("history after reopen = %d", n)
	}
	st, _ := ob.Stats(ctx)
	if st.Pending != 1 || st.LastSeq != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFull(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob := openTest(t, path, Opts{MaxBytes: 3 * (EntryOverhead + 100)})
	var items []Item
	for {
		it, err := ob.Enqueue(ctx, entry("042F51B2712380", "B"))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		t.Fatal("nothing fit")
	}
	// Refused taps write nothing: no history row, no seq consumed.
	if n, _ := ob.Used(ctx, "042F51B2712380", "evt-1", "B"); n != len(items) {
		t.Fatalf("history %d, queued %d", n, len(items))
	}
	if _, err := ob.Done(ctx, items[0].ID, true); err != nil {
		t.Fatal(err)
	}
	it := mustEnqueue(t, ob, entry("042F51B2712380", "B"))
	if it.Seq != int64(len(items))+1 {
		t.Fatalf("seq after full = %d", it.Seq)
	}
	ob.Close()
	ob = openTest(t, path, Opts{})
	got, err := ob.Pending(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := append(items[1:], it)
	if len(got) != len(want) {
		t.Fatalf("pending %d, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || string(got[i].Body) != string(want[i].Body) {
			t.Fatalf("pending[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	// MinFreeBytes beyond any disk refuses too.
	ob2 := openTest(t, "", Opts{MinFreeBytes: 1 << 62})
	if _, err := ob2.Enqueue(ctx, entry("042F51B2712380", "B")); !errors.Is(err, ErrFull) {
		t.Fatalf("min free: %v", err)
	}
}

func TestBuildAndIDErrors(t *testing.T) {
	ctx := context.Background()
	fail := errors.New("boom")
	ob := openTest(t, "", Opts{NewID: func(time.Time) (string, error) { return "", fail }})
	if _, err := ob.Enqueue(ctx, entry("042F51B2712380", "B")); !errors.Is(err, ErrStorage) || !errors.Is(err, fail) {
		t.Fatalf("id error: %v", err)
	}
	ob = openTest(t, "", Opts{})
	e := entry("042F51B2712380", "B")
	e.Build = func(string, int64) ([]byte, error) { return nil, fail }
	if _, err := ob.Enqueue(ctx, e); !errors.Is(err, ErrStorage) || !errors.Is(err, fail) {
		t.Fatalf("build error: %v", err)
	}
	if it := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it.Seq != 1 {
		t.Fatalf("seq after build error = %d", it.Seq)
	}
}

func TestNewV7At(t *testing.T) {
	id, err := NewV7At(t0, rand.Reader)
	if err != nil || !protocol.ValidID(id) || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
		t.Fatalf("%q %v", id, err)
	}
	if !strings.HasPrefix(id, fmt.Sprintf("%08x-%04x", t0.UnixMilli()>>16, t0.UnixMilli()&0xffff)) {
		t.Fatalf("%q does not carry %d", id, t0.UnixMilli())
	}
}

const crashEnv = "QUEUE_CRASH_CHILD_DB"

// TestCrashChild is the child of TestCrash: it enqueues forever and prints
// each seq once Enqueue returned.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child process of TestCrash")
	}
	ob, err := Open(path, Opts{SeqFile: seqFileFor(path)})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		it, err := ob.Enqueue(context.Background(), entry(fmt.Sprintf("04%012X", i), "B"))
		if err != nil {
			fmt.Fprintln(w, "ERR", err)
			w.Flush()
			os.Exit(3)
		}
		fmt.Fprintln(w, it.Seq, it.ID)
		w.Flush()
	}
}

func TestCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	// Some history first, so the child starts above seq 1.
	ob := openTest(t, path, Opts{SeqFile: seqFileFor(path)})
	for range 3 {
		mustEnqueue(t, ob, entry("042F51B2712380", "B"))
	}
	ob.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	printed := map[int64]string{}
	var maxSeq int64
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "ERR" || f[0] == "PASS" || strings.HasPrefix(f[0], "---") {
			if len(f) > 0 && f[0] == "ERR" {
				t.Fatalf("child: %s", sc.Text())
			}
			continue
		}
		seq, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || len(f) != 2 {
			continue
		}
		printed[seq] = f[1]
		maxSeq = max(maxSeq, seq)
		if len(printed) == 60 {
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	cmd.Wait()
	if len(printed) < 60 {
		t.Fatalf("child printed only %d seqs", len(printed))
	}

	ob = openTest(t, path, Opts{SeqFile: seqFileFor(path)})
	items, err := ob.Pending(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]string{}
	for _, it := range items {
		have[it.Seq] = it.ID
	}
	for seq, id := range printed {
		if have[seq] != id {
			t.Errorf("seq %d (%s) printed by the child but not on disk (got %q)", seq, id, have[seq])
		}
	}
	var diskMax int64
	for seq := range have {
		diskMax = max(diskMax, seq)
	}
	it := mustEnqueue(t, ob, entry("042F51B2712380", "B"))
	if it.Seq <= diskMax || it.Seq <= maxSeq {
		t.Fatalf("seq after crash = %d, disk max %d, printed max %d", it.Seq, diskMax, maxSeq)
	}
	t.Logf("child printed %d seqs (max %d) before SIGKILL; on disk max %d; next %d", len(printed), maxSeq, diskMax, it.Seq)

	// Even with the database gone, seq continues above everything used.
	ob.Close()
	for _, s := range []string{"", "-wal", "-shm"} {
		os.Remove(path + s)
	}
	ob = openTest(t, path, Opts{SeqFile: seqFileFor(path)})
	if it2 := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it2.Seq <= it.Seq {
		t.Fatalf("seq with a new database after the crash = %d, used up to %d", it2.Seq, it.Seq)
	}
}

// The tap path must commit with synchronous=FULL, also after a Done (which
// commits with NORMAL).
func TestSynchronousFull(t *testing.T) {
	ctx := context.Background()
	ob := openTest(t, "", Opts{})
	check := func(when string) {
		t.Helper()
		ob.mu.Lock()
		defer ob.mu.Unlock()
		var s int
		if err := ob.w.c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&s); err != nil || s != 2 {
			t.Fatalf("%s: synchronous = %d, %v; want 2 (FULL)", when, s, err)
		}
	}
	check("after open")
	it := mustEnqueue(t, ob, entry("042F51B2712380", "B"))
	ob.Done(ctx, it.ID, true)
	check("after done")
}
