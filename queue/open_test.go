package queue

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/queue/internal/loopfs"
)

// fileSum is a file's contents' hash, or a marker for a directory/missing.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	if st.IsDir() {
		return "dir"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// seqFileFor is the seq file the tests keep beside a queue.
func seqFileFor(path string) string { return filepath.Join(filepath.Dir(path), "seq.json") }

// filledQueue makes a closed queue at path with n pending checkins and
// returns their items.
func filledQueue(t *testing.T, path string, n int) []Item {
	t.Helper()
	ob, err := Open(path, Opts{MinFreeBytes: -1, SeqFile: seqFileFor(path)})
	if err != nil {
		t.Fatal(err)
	}
	var items []Item
	for i := range n {
		items = append(items, mustEnqueue(t, ob, entry(fmt.Sprintf("04%012X", i), "D2026-11-24")))
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return items
}

// leafPages lists the pages of table's leaves (page number, cells).
func leafPages(t *testing.T, path, table string) [][2]int {
	t.Helper()
	db, err := sql.Open("sqlite", roDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]int
	for rows.Next() {
		var p, n int
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]int{p, n})
	}
	return out
}

// overwritePage fills page pgno (1-based, 4096 bytes) of the file with garbage.
func overwritePage(t *testing.T, path string, pgno int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(junk, int64(pgno-1)*4096); err != nil {
		t.Fatal(err)
	}
}

// Open refuses whatever is not a usable queue with ErrUnusable, says which
// file and what is wrong, and leaves the file exactly as it was.
func TestOpenUnusable(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	filledQueue(t, good, 400)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	leaves := leafPages(t, good, "checkin")

	cases := []struct {
		name, want string
		make       func(path string)
	}{
		{"not a database", "not an SQLite database", func(p string) {
			os.WriteFile(p, []byte(strings.Repeat("not a database\n", 500)), 0o600)
		}},
		{"empty file", "empty (0 bytes)", func(p string) { os.WriteFile(p, nil, 0o600) }},
		{"truncated header", "shorter than an SQLite header", func(p string) {
			os.WriteFile(p, goodBytes[:40], 0o600)
		}},
		{"truncated mid-page", "not a whole number", func(p string) {
			os.WriteFile(p, goodBytes[:len(goodBytes)/2+100], 0o600)
		}},
		{"truncated at a page", "truncated", func(p string) {
			os.WriteFile(p, goodBytes[:len(goodBytes)/2/4096*4096], 0o600)
		}},
		{"a corrupt page mid-file", "corrupt", func(p string) {
			os.WriteFile(p, goodBytes, 0o600)
			overwritePage(t, p, leaves[len(leaves)/2][0])
		}},
		{"a foreign SQLite database", "foreign SQLite database", func(p string) {
			db, err := sql.Open("sqlite", "file:"+p)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE users (name TEXT, email TEXT); INSERT INTO users VALUES ('a', 'b')"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a foreign table named checkin", "foreign SQLite database", func(p string) {
			db, err := sql.Open("sqlite", "file:"+p)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE checkin (a); CREATE TABLE history (b); CREATE TABLE meta (k, v)"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a directory", "is a directory", func(p string) { os.Mkdir(p, 0o700) }},
		{"a WAL without its database", "missing but its WAL", func(p string) {
			os.WriteFile(p+"-wal", goodBytes[:8192], 0o600)
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("case%d.db", i))
			c.make(p)
			before := map[string]string{}
			for _, s := range []string{"", "-wal", "-journal"} {
				before[s] = fileSum(t, p+s)
			}
			ob, err := Open(p, Opts{})
			if err == nil {
				ob.Close()
				t.Fatal("opened")
			}
			t.Log(err)
			if !errors.Is(err, ErrUnusable) || errors.Is(err, ErrStorage) {
				t.Errorf("want ErrUnusable (and not ErrStorage): %v", err)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "queue: ") {
				t.Errorf("error should name %s and say %q: %v", p, c.want, err)
			}
			for s, sum := range before {
				if got := fileSum(t, p+s); got != sum {
					t.Errorf("%s%s changed by Open", p, s)
				}
			}
			if _, err := os.Stat(p + ".new"); err == nil {
				t.Errorf("a temporary database was left behind")
			}
		})
	}
}

// State errors (a missing or read-only directory) are ErrStorage, not
// ErrUnusable: the unit retries them, and nothing is set aside.
func TestOpenStateErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing", "outbox.db"), Opts{})
	if !errors.Is(err, ErrStorage) || errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing dir: %v", err)
	}
	t.Log(err)

	fs := loopfs.Mount(t, 16<<20)
	p := filepath.Join(fs.Dir, "queue.db")
	filledQueue(t, p, 10)
	fs.Remount(t, "ro")
	_, err = Open(p, Opts{})
	if !errors.Is(err, ErrStorage) || errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("read-only filesystem, existing queue: %v", err)
	}
	t.Log(err)
	_, err = Open(filepath.Join(fs.Dir, "new.db"), Opts{})
	if !errors.Is(err, ErrStorage) || errors.Is(err, ErrUnusable) {
		t.Fatalf("read-only filesystem, new queue: %v", err)
	}
	t.Log(err)
	fs.Remount(t, "rw")
	ob := openTest(t, p, Opts{MinFreeBytes: -1})
	if st, _ := ob.Stats(context.Background()); st.Pending != 10 {
		t.Fatalf("after the remount: %+v", st)
	}
}

// A queue made by the first release (migration 0001 only) opens and gets
// the later migrations.
func TestOpenUpgradesOldQueue(t *testing.T) {
	p := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", DSN(p, true))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := migrationFS.ReadFile("migrations/0001_init.sql")
	if _, err := db.Exec(`CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) WITHOUT ROWID;
		INSERT INTO schema_migrations VALUES ('0001_init.sql', 1);` + string(src) + `
		INSERT INTO checkin VALUES (7, '0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11', 1, x'00', 'evt-1', '', '{"v":1}')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ob := openTest(t, p, Opts{})
	if it := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it.Seq != 8 {
		t.Fatalf("seq %d", it.Seq)
	}
}

func TestSetAside(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "queue.db")
	now := time.Date(2026, 12, 1, 11, 36, 0, 0, time.FixedZone("CET", 3600))
	for _, s := range []string{"", "-wal", "-shm"} {
		os.WriteFile(p+s, []byte("junk"+s), 0o600)
	}
	got, err := SetAside(p, now)
	want := p + ".unusable-20261201T103600Z"
	if err != nil || got != want {
		t.Fatalf("SetAside = %q, %v; want %q", got, err, want)
	}
	for _, s := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(want + s); err != nil || string(b) != "junk"+s {
			t.Errorf("%s: %q %v", want+s, b, err)
		}
		if _, err := os.Stat(p + s); err == nil {
			t.Errorf("%s still there", p+s)
		}
	}
	// Same instant again: never over the first one.
	os.WriteFile(p, []byte("second"), 0o600)
	got, err = SetAside(p, now)
	if err != nil || got != want+"-2" {
		t.Fatalf("second SetAside = %q, %v", got, err)
	}
	if b, _ := os.ReadFile(want); string(b) != "junk" {
		t.Fatalf("first set-aside file overwritten: %q", b)
	}
	if _, err := SetAside(p, now); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("nothing to set aside: %v", err)
	}
	// And then a fresh queue opens in its place.
	ob := openTest(t, p, Opts{})
	mustEnqueue(t, ob, entry("042F51B2712380", "B"))
}

// The cycle the kiosk runs: an unusable queue is set aside, a fresh one
// opened, and seq continues above everything the old one used.
func TestSeqNeverReused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "queue.db")
	seqFile := filepath.Join(dir, "seq.json")
	o := Opts{MinFreeBytes: -1, SeqFile: seqFile}
	ob, err := Open(p, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		mustEnqueue(t, ob, entry("042F51B2712380", "B"))
	}
	if n, err := ReadSeqFile(seqFile); err != nil || n < 5 {
		t.Fatalf("seq file while open: %d %v", n, err)
	}
	ob.Close()
	if n, err := ReadSeqFile(seqFile); err != nil || n != 5 {
		t.Fatalf("seq file after a clean close: %d %v (want 5: no gap)", n, err)
	}
	// A clean restart continues without a gap.
	ob = openTest(t, p, o)
	if it := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it.Seq != 6 {
		t.Fatalf("after reopen: seq %d", it.Seq)
	}
	ob.Close()

	// The database is lost: a fresh one continues above 6.
	for _, s := range []string{"", "-wal", "-shm"} {
		os.Remove(p + s)
	}
	ob = openTest(t, p, o)
	if it := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it.Seq != 7 {
		t.Fatalf("fresh database: seq %d, want 7", it.Seq)
	}
	ob.Close()

	// Set aside an "unusable" one: the same.
	if _, err := SetAside(p, time.Now()); err != nil {
		t.Fatal(err)
	}
	ob = openTest(t, p, o)
	if it := mustEnqueue(t, ob, entry("042F51B2712380", "B")); it.Seq != 8 {
		t.Fatalf("after set-aside: seq %d, want 8", it.Seq)
	}

	// Many taps: the file stays ahead, a block at a time.
	for range 3 * SeqBlock {
		mustEnqueue(t, ob, entry("042F51B2712380", "B"))
	}
	st, _ := ob.Stats(context.Background())
	n, err := ReadSeqFile(seqFile)
	if err != nil || n < st.LastSeq || n > st.LastSeq+SeqBlock {
		t.Fatalf("seq file %d (%v) with last seq %d", n, err, st.LastSeq)
	}

	// A seq file that is not one stops Open: continuing from a guess could
	// reuse seqs.
	ob.Close()
	os.WriteFile(seqFile, []byte("garbage"), 0o600)
	_, err = Open(p, o)
	if !errors.Is(err, ErrStorage) || errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), seqFile) {
		t.Fatalf("corrupt seq file: %v", err)
	}
	t.Log(err)
}
