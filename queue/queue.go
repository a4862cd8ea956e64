// Package queue is the kiosk's durable outbox: every accepted tap becomes a
// checkin row in a SQLite database, on disk (fsync'd) before the kiosk says
// "saved", and stays there until central's Result for it arrives. It also
// keeps the local check-in history that the constraint pre-filter counts.
//
// The package knows nothing of MQTT; mqttfwd reads Pending and calls Done.
//
// Durability: WAL with synchronous=FULL, so every Enqueue commit is fsync'd.
// Deletes (Done) commit with synchronous=NORMAL: a delete lost to a power cut
// only makes the checkin come back and be republished, and central answers a
// repeated id with the identical Result. The next FULL commit syncs it anyway.
//
// Writes are kept few and small for SD cards: one short transaction per tap,
// no counter row on the tap path (see meta in the migration), and WAL
// checkpoints run after a tap returned instead of inside its commit.
package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/uitpas/tap-kiosk/clock"
)

// Errors callers branch on (with errors.Is).
var (
	// ErrFull: the queue reached MaxBytes or the filesystem MinFreeBytes;
	// nothing was written. The kiosk refuses the tap visibly.
	ErrFull = errors.New("queue full")
	// ErrStorage: the database failed; the checkin may not be on disk.
	ErrStorage = errors.New("queue storage error")
	// ErrClosed: the outbox was closed.
	ErrClosed = errors.New("queue closed")
)

// Defaults for Opts.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultMinFreeBytes = 32 << 20
	// EntryOverhead is what one queued checkin costs beyond its body (row,
	// id index entry, history row), counted against MaxBytes.
	EntryOverhead = 200
	// checkpointEvery is how many commits may pile up in the WAL before the
	// background connection checkpoints it.
	checkpointEvery = 200
	busyTimeoutMs   = 5000
)

// Opts configures an Outbox. The zero value is usable.
type Opts struct {
	MaxBytes     int64                             // bound on queued checkin bytes+overhead; 0 → 256 MiB
	MinFreeBytes int64                             // refuse new checkins when the filesystem has less free; 0 → 32 MiB; <0 → no check
	Clock        clock.Clock                       // nil → clock.Real{}
	Logger       *slog.Logger                      // nil → discard
	NewID        func(t time.Time) (string, error) // nil → UUIDv7 built from t
}

// Entry is one checkin to queue.
type Entry struct {
	// Chip, EventID, Bucket are the local history key for the constraint
	// pre-filter; Bucket "" writes no history row.
	Chip, EventID, Bucket string
	// Build makes the payload for the id and seq the outbox assigns.
	Build func(id string, seq int64) ([]byte, error)
}

// Item is a queued checkin.
type Item struct {
	ID       string
	Seq      int64
	Body     []byte
	QueuedAt time.Time
}

// Stats is a cheap snapshot of the queue.
type Stats struct {
	Pending        int
	Bytes          int64     // bodies + EntryOverhead each
	OldestQueuedAt time.Time // zero when empty
	LastSeq        int64     // highest seq ever assigned
}

// Ack is one answered checkin for DoneBatch.
type Ack struct {
	ID          string
	KeepHistory bool
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// Outbox is the durable queue. Its methods are safe for concurrent use; all
// writes go through one connection, serialised.
type Outbox struct {
	path string
	o    Opts
	log  *slog.Logger
	clk  clock.Clock

	db *sql.DB
	// w writes checkins (synchronous=FULL) and serves Used on the tap path.
	// d deletes (synchronous=NORMAL: a lost delete is only a republish, and
	// the next FULL commit on w syncs d's WAL frames too). ob.mu serialises
	// them, so they never wait on each other's SQLite lock.
	w, d  writer
	stmts struct {
		insCheckin, insHistory, used        *sql.Stmt // on w
		delCheckins, delHistory, setLastSeq *sql.Stmt // on d
		pending, oldest                     *sql.Stmt // on the pool
	}

	mu       sync.Mutex // guards everything below and the use of w and d
	closed   bool
	lastSeq  int64 // highest seq assigned
	metaSeq  int64 // meta.last_seq as on disk
	pending  int
	bytes    int64
	commits  int
	ckptKick chan struct{}
	ckptDone chan struct{}
}

// writer is a connection kept for writes, with its transaction statements.
type writer struct {
	c                       *sql.Conn
	begin, commit, rollback *sql.Stmt
}

// Open opens or creates the outbox database at path, applies the embedded
// migrations and checks the file is writable.
func Open(path string, o Opts) (*Outbox, error) {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NewID == nil {
		o.NewID = func(t time.Time) (string, error) { return NewV7At(t, rand.Reader) }
	}
	ob := &Outbox{path: path, o: o, log: o.Logger, clk: o.Clock,
		ckptKick: make(chan struct{}, 1), ckptDone: make(chan struct{})}
	if err := ob.open(); err != nil {
		ob.closeDB()
		return nil, openErr(path, err)
	}
	go ob.checkpointer()
	return ob, nil
}

// DSN returns the data source name the outbox uses for path: WAL,
// synchronous=FULL, a busy timeout, and, unless autoCheckpoint, no
// checkpoints inside commits (the outbox runs them itself). Exported for
// benchmarks.
func DSN(path string, autoCheckpoint bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if !autoCheckpoint {
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (ob *Outbox) open() error {
	dir := filepath.Dir(ob.path)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("directory: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("directory: %s is not a directory", dir)
	}
	if st, err := os.Stat(ob.path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", ob.path)
	}
	db, err := sql.Open("sqlite", DSN(ob.path, false))
	if err != nil {
		return err
	}
	ob.db = db
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	ctx := context.Background()
	if ob.w.c, err = db.Conn(ctx); err != nil {
		return err
	}
	var mode string
	if err := ob.w.c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, not wal (read-only file or directory?)", mode)
	}
	if err := migrate(ctx, ob.w.c); err != nil {
		return err
	}
	// A write probe: a read-only file or directory fails here, not at the
	// first tap.
	if _, err := ob.w.c.ExecContext(ctx, "UPDATE meta SET v = v WHERE k = 'last_seq'"); err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	if ob.d.c, err = db.Conn(ctx); err != nil {
		return err
	}
	if _, err := ob.d.c.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return err
	}
	var maxSeq, n, body sql.NullInt64
	if err := ob.w.c.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'last_seq'").Scan(&ob.metaSeq); err != nil {
		return err
	}
	if err := ob.w.c.QueryRowContext(ctx, "SELECT max(seq), count(*), sum(length(body)) FROM checkin").Scan(&maxSeq, &n, &body); err != nil {
		return err
	}
	ob.lastSeq = max(ob.metaSeq, maxSeq.Int64)
	ob.pending = int(n.Int64)
	ob.bytes = body.Int64 + n.Int64*EntryOverhead
	return ob.prepare(ctx)
}

func (ob *Outbox) prepare(ctx context.Context) error {
	var err error
	p := func(c interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}, q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = c.PrepareContext(ctx, q)
		return s
	}
	s := &ob.stmts
	for _, w := range []*writer{&ob.w, &ob.d} {
		w.begin = p(w.c, "BEGIN IMMEDIATE")
		w.commit = p(w.c, "COMMIT")
		w.rollback = p(w.c, "ROLLBACK")
	}
	s.insCheckin = p(ob.w.c, "INSERT INTO checkin (seq, id, queued_at, chip_key, event_id, bucket, body) VALUES (?, ?, ?, ?, ?, ?, ?)")
	s.insHistory = p(ob.w.c, "INSERT INTO history (chip_key, event_id, bucket, id, at) VALUES (?, ?, ?, ?, ?)")
	s.used = p(ob.w.c, "SELECT count(*) FROM history WHERE chip_key = ? AND event_id = ? AND bucket = ?")
	s.delCheckins = p(ob.d.c, `DELETE FROM checkin WHERE id IN (SELECT value FROM json_each(?))
		RETURNING id, seq, length(body), chip_key, event_id, bucket`)
	s.delHistory = p(ob.d.c, "DELETE FROM history WHERE chip_key = ? AND event_id = ? AND bucket = ? AND id = ?")
	s.setLastSeq = p(ob.d.c, "UPDATE meta SET v = ? WHERE k = 'last_seq' AND v < ?")
	s.pending = p(ob.db, "SELECT seq, id, body, queued_at FROM checkin WHERE seq > ? ORDER BY seq LIMIT ?")
	s.oldest = p(ob.db, "SELECT queued_at FROM checkin ORDER BY seq LIMIT 1")
	return err
}

// migrate applies the embedded migrations not yet recorded, each in its own
// transaction together with its record.
func migrate(ctx context.Context, c *sql.Conn) error {
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) WITHOUT ROWID`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		var n int
		if err := c.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE name = ?", base).Scan(&n); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if n > 0 {
			continue
		}
		src, err := migrationFS.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, string(src)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", base, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

func openErr(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("queue: open %s: not a usable SQLite database (corrupt or foreign file): %w: %w", path, ErrStorage, err)
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return fmt.Errorf("queue: open %s: cannot write the database file or its directory: %w: %w", path, ErrStorage, err)
		}
	}
	return fmt.Errorf("queue: open %s: %w: %w", path, ErrStorage, err)
}

// Close checkpoints the WAL and closes the database. Calls after Close
// return ErrClosed.
func (ob *Outbox) Close() error {
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return nil
	}
	ob.closed = true
	close(ob.ckptKick)
	ob.mu.Unlock()
	<-ob.ckptDone
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if _, err := ob.w.c.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		ob.log.Warn("queue: checkpoint at close", "err", err)
	}
	if err := ob.closeDB(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

func (ob *Outbox) closeDB() error {
	s := &ob.stmts
	for _, st := range []*sql.Stmt{s.insCheckin, s.insHistory, s.used, s.delCheckins, s.delHistory,
		s.setLastSeq, s.pending, s.oldest, ob.w.begin, ob.w.commit, ob.w.rollback, ob.d.begin, ob.d.commit, ob.d.rollback} {
		if st != nil {
			st.Close()
		}
	}
	if ob.d.c != nil {
		ob.d.c.Close()
	}
	if ob.w.c != nil {
		ob.w.c.Close()
	}
	if ob.db != nil {
		return ob.db.Close()
	}
	return nil
}

// checkpointer copies the WAL back into the database after the tap that
// asked for it has returned. It holds the writer lock meanwhile, so the
// checkpoint completes and the next commit rewinds the WAL to its start
// (overwriting a file in place syncs cheaper than growing it); a concurrent
// checkpoint measured clearly slower taps. Taps come seconds apart, so one
// rarely waits for it.
func (ob *Outbox) checkpointer() {
	defer close(ob.ckptDone)
	for range ob.ckptKick {
		ob.mu.Lock()
		if !ob.closed {
			if _, err := ob.w.c.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				ob.log.Warn("queue: checkpoint", "err", err)
			}
		}
		ob.mu.Unlock()
	}
}

// committed counts a commit and wakes the checkpointer now and then. ob.mu held.
func (ob *Outbox) committed() {
	ob.commits++
	if ob.commits >= checkpointEvery {
		ob.commits = 0
		select {
		case ob.ckptKick <- struct{}{}:
		default:
		}
	}
}

// ChipKey is how history stores a chip number: a truncated SHA-256, so the
// long-lived history holds no card numbers.
func chipKey(chip string) []byte {
	h := sha256.Sum256([]byte(chip))
	return h[:16]
}

// Enqueue assigns the next seq and a fresh id, builds the body, and writes
// the checkin row and (when e.Bucket != "") the history row in one
// transaction. It returns once the transaction is fsync'd.
func (ob *Outbox) Enqueue(ctx context.Context, e Entry) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, fmt.Errorf("queue: enqueue: %w", err)
	}
	if e.Build == nil {
		return Item{}, fmt.Errorf("queue: enqueue: %w: no Build func", ErrStorage)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return Item{}, fmt.Errorf("queue: enqueue: %w", ErrClosed)
	}
	now := ob.clk.Now()
	id, err := ob.o.NewID(now)
	if err != nil {
		return Item{}, fmt.Errorf("queue: enqueue: new id: %w: %w", ErrStorage, err)
	}
	seq := ob.lastSeq + 1
	body, err := e.Build(id, seq)
	if err != nil {
		return Item{}, fmt.Errorf("queue: enqueue: build: %w: %w", ErrStorage, err)
	}
	cost := int64(len(body)) + EntryOverhead
	if ob.bytes+cost > ob.o.MaxBytes {
		return Item{}, fmt.Errorf("queue: enqueue: %d bytes queued, max %d: %w", ob.bytes, ob.o.MaxBytes, ErrFull)
	}
	if ob.o.MinFreeBytes > 0 {
		if free, ok := freeBytes(filepath.Dir(ob.path)); ok && free < ob.o.MinFreeBytes+cost {
			return Item{}, fmt.Errorf("queue: enqueue: %d bytes free on the filesystem, min %d: %w", free, ob.o.MinFreeBytes, ErrFull)
		}
	}
	// From here on the seq counts as used even on failure: a commit that
	// failed ambiguously may still be on disk, and a seq is never reused.
	ob.lastSeq = seq
	// The transaction runs to its end whatever ctx does: an interrupted
	// COMMIT would leave the caller unsure whether the tap is on disk.
	wctx := context.WithoutCancel(ctx)
	key := chipKey(e.Chip)
	ms := now.UnixMilli()
	err = ob.tx(wctx, &ob.w, func() error {
		if _, err := ob.stmts.insCheckin.ExecContext(wctx, seq, id, ms, key, e.EventID, e.Bucket, body); err != nil {
			return err
		}
		if e.Bucket != "" {
			if _, err := ob.stmts.insHistory.ExecContext(wctx, key, e.EventID, e.Bucket, id, ms); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Item{}, storageErr("enqueue", err)
	}
	ob.pending++
	ob.bytes += cost
	return Item{ID: id, Seq: seq, Body: body, QueuedAt: now}, nil
}

// tx runs f between BEGIN IMMEDIATE and COMMIT on w. ob.mu held.
func (ob *Outbox) tx(ctx context.Context, w *writer, f func() error) error {
	if _, err := w.begin.ExecContext(ctx); err != nil {
		return err
	}
	if err := f(); err != nil {
		if _, rerr := w.rollback.ExecContext(ctx); rerr != nil {
			ob.log.Warn("queue: rollback", "err", rerr)
		}
		return err
	}
	if _, err := w.commit.ExecContext(ctx); err != nil {
		// A failed COMMIT may leave the transaction open.
		w.rollback.ExecContext(ctx)
		return err
	}
	ob.committed()
	return nil
}

func storageErr(op string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return fmt.Errorf("queue: %s: disk full: %w: %w", op, ErrFull, err)
	}
	return fmt.Errorf("queue: %s: %w: %w", op, ErrStorage, err)
}

// Used counts the history rows for the key: how often this chip saved for
// the event in this constraint bucket, as far as the kiosk knows.
func (ob *Outbox) Used(ctx context.Context, chip, eventID, bucket string) (int, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return 0, fmt.Errorf("queue: used: %w", ErrClosed)
	}
	var n int
	if err := ob.stmts.used.QueryRowContext(ctx, chipKey(chip), eventID, bucket).Scan(&n); err != nil {
		return 0, storageErr("used", err)
	}
	return n, nil
}

// Pending returns up to limit queued checkins with seq > afterSeq, in seq
// order.
func (ob *Outbox) Pending(ctx context.Context, afterSeq int64, limit int) ([]Item, error) {
	if ob.isClosed() {
		return nil, fmt.Errorf("queue: pending: %w", ErrClosed)
	}
	rows, err := ob.stmts.pending.QueryContext(ctx, afterSeq, limit)
	if err != nil {
		return nil, storageErr("pending", err)
	}
	defer rows.Close()
	var items []Item
	for rows.Next() {
		var it Item
		var ms int64
		if err := rows.Scan(&it.Seq, &it.ID, &it.Body, &ms); err != nil {
			return nil, storageErr("pending", err)
		}
		it.QueuedAt = time.UnixMilli(ms)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, storageErr("pending", err)
	}
	return items, nil
}

func (ob *Outbox) isClosed() bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.closed
}

// Done removes a checkin once central's Result for it arrived.
// keepHistory=false also removes its history row (central refused it for a
// reason other than saved/maximum-reached, so it must not count against the
// constraint). An unknown id gives (false, nil).
func (ob *Outbox) Done(ctx context.Context, id string, keepHistory bool) (bool, error) {
	known, err := ob.DoneBatch(ctx, []Ack{{ID: id, KeepHistory: keepHistory}})
	if err != nil {
		return false, err
	}
	return known[0], nil
}

// DoneBatch is Done for many ids in one transaction; known[i] says whether
// acks[i].ID was pending (a repeated id is known only the first time).
func (ob *Outbox) DoneBatch(ctx context.Context, acks []Ack) ([]bool, error) {
	known := make([]bool, len(acks))
	if len(acks) == 0 {
		return known, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("queue: done: %w", err)
	}
	first := make(map[string]int, len(acks))
	ids := make([]string, 0, len(acks))
	for i, a := range acks {
		if _, ok := first[a.ID]; !ok {
			first[a.ID] = i
			ids = append(ids, a.ID)
		}
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("queue: done: %w", err)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return nil, fmt.Errorf("queue: done: %w", ErrClosed)
	}
	wctx := context.WithoutCancel(ctx)
	var removed int
	var removedBytes, maxSeq int64
	err = ob.tx(wctx, &ob.d, func() error {
		// One statement for the whole batch: per-row statements cost more
		// than the deletes themselves.
		rows, err := ob.stmts.delCheckins.QueryContext(wctx, idsJSON)
		if err != nil {
			return err
		}
		type hist struct {
			key        []byte
			ev, bucket string
			id         string
		}
		var drop []hist
		for rows.Next() {
			var id, ev, bucket string
			var seq, n int64
			var key []byte
			if err := rows.Scan(&id, &seq, &n, &key, &ev, &bucket); err != nil {
				rows.Close()
				return err
			}
			i, ok := first[id]
			if !ok {
				continue
			}
			known[i] = true
			removed++
			removedBytes += n + EntryOverhead
			maxSeq = max(maxSeq, seq)
			if !acks[i].KeepHistory && bucket != "" {
				drop = append(drop, hist{key, ev, bucket, id})
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, h := range drop {
			if _, err := ob.stmts.delHistory.ExecContext(wctx, h.key, h.ev, h.bucket, h.id); err != nil {
				return err
			}
		}
		if maxSeq > ob.metaSeq {
			if _, err := ob.stmts.setLastSeq.ExecContext(wctx, maxSeq, maxSeq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, storageErr("done", err)
	}
	ob.metaSeq = max(ob.metaSeq, maxSeq)
	ob.pending -= removed
	ob.bytes -= removedBytes
	return known, nil
}

// Stats returns the counters kept in memory and the oldest queued time.
func (ob *Outbox) Stats(ctx context.Context) (Stats, error) {
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return Stats{}, fmt.Errorf("queue: stats: %w", ErrClosed)
	}
	s := Stats{Pending: ob.pending, Bytes: ob.bytes, LastSeq: ob.lastSeq}
	ob.mu.Unlock()
	if s.Pending == 0 {
		return s, nil
	}
	var ms int64
	err := ob.stmts.oldest.QueryRowContext(ctx).Scan(&ms)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Stats{}, storageErr("stats", err)
	default:
		s.OldestQueuedAt = time.UnixMilli(ms)
	}
	return s, nil
}

// PruneHistory deletes history rows older than t, except those whose checkin
// is still pending (central has not ruled on them yet).
func (ob *Outbox) PruneHistory(ctx context.Context, olderThan time.Time) (int, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return 0, fmt.Errorf("queue: prune: %w", ErrClosed)
	}
	var n int64
	err := ob.tx(ctx, &ob.d, func() error {
		r, err := ob.d.c.ExecContext(ctx, `DELETE FROM history WHERE at < ?
			AND NOT EXISTS (SELECT 1 FROM checkin WHERE checkin.id = history.id)`, olderThan.UnixMilli())
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, storageErr("prune", err)
	}
	return int(n), nil
}

// String describes the outbox for logs.
func (ob *Outbox) String() string { return "queue(" + ob.path + ")" }

// NewV7At returns a UUIDv7 for time t with random bits from r: the id of a
// checkin carries its tap time, and tests can make ids from a fake clock.
func NewV7At(t time.Time, r io.Reader) (string, error) {
	var u [16]byte
	if _, err := io.ReadFull(r, u[6:]); err != nil {
		return "", fmt.Errorf("queue: uuid: %w", err)
	}
	ms := uint64(max(t.UnixMilli(), 0))
	for i := 5; i >= 0; i-- {
		u[i] = byte(ms)
		ms >>= 8
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	const hx = "0123456789abcdef"
	var b strings.Builder
	b.Grow(36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hx[c>>4])
		b.WriteByte(hx[c&0xf])
	}
	return b.String(), nil
}
