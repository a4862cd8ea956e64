// Package queue is the kiosk's durable outbox: every accepted tap becomes a
// checkin row in a SQLite database, on disk (fsync'd) before the kiosk says
// "saved", and stays there until central's Result for it arrives. It also
// keeps the local check-in history that the constraint pre-filter counts.
//
// The package knows nothing of MQTT; mqttfwd reads Pending and calls Done.
//
// Durability: WAL with synchronous=FULL, so every Enqueue commit is fsync'd
// (one fsync per tap). Deletes (Done) commit with synchronous=NORMAL: a
// delete lost to a power cut only makes the checkin come back and be
// republished, and central answers a repeated id with the identical Result.
// The next FULL commit syncs it anyway.
//
// A tap whose commit failed is never forwarded, also when its frames made it
// into the WAL file and a crash lets SQLite recover them: see void.go.
//
// seq is never reused, whatever happens to the database: with Opts.SeqFile
// the outbox keeps a high-water mark outside the database, reserved in blocks
// of SeqBlock (see seqfile.go). A database that exists but is not a usable
// queue is refused with ErrUnusable and never touched; SetAside moves it out
// of the way and Salvage copies what is readable into a fresh queue.
//
// Disk space: taps are refused (ErrFull) once the filesystem has less than
// MinFreeBytes free; what the drain needs (deletes, checkpoints) stays well
// below that floor (see space.go for the numbers), and an optional reserve
// file is given up when the disk is full anyway.
//
// Writes are kept few and small for SD cards: one short transaction per tap,
// no counter row on the tap path (see meta in the migration), and WAL
// checkpoints run after a tap returned instead of inside its commit. The
// history is pruned off the tap path (see history.go).
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
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// ErrStorage: the database failed; the checkin may not be on disk. Open
	// returns it for state errors worth retrying: a missing or read-only
	// directory, permissions, a file locked by another process.
	ErrStorage = errors.New("queue storage error")
	// ErrClosed: the outbox was closed.
	ErrClosed = errors.New("queue closed")
	// ErrUnusable: Open found a file at the path that is not a usable queue
	// (corrupt, truncated, empty, a foreign SQLite database, not a database
	// at all, a directory). Open left it as it was; retrying will not help.
	// SetAside moves it away so that Open can start a fresh queue, and
	// Salvage copies what is still readable into that one.
	ErrUnusable = errors.New("queue database unusable")
)

// Defaults and bounds for Opts.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultMinFreeBytes = 32 << 20
	// DrainRoom is the least free space the drain needs (deletes and WAL
	// checkpoints; see space.go): a MinFreeBytes above 0 but below it is
	// raised to it, since a floor under the drain's needs could leave a
	// full disk that no Result can empty.
	DrainRoom = 8 << 20
	// DefaultReserveBytes is the recommended Opts.ReserveBytes.
	DefaultReserveBytes = 8 << 20
	// EntryOverhead is what one queued checkin costs beyond its body (row and
	// id index entry), counted against MaxBytes.
	EntryOverhead = 200
	// HistoryRowBytes is what one history row costs (key, bucket, id, time
	// and B-tree overhead, about 96 bytes measured), counted against
	// MaxBytes for as long as the row is kept.
	HistoryRowBytes = 100
	// MaxDoneBatch is the most acks one DoneBatch should carry: one
	// transaction of that many deletes writes well under 1 MiB of WAL.
	MaxDoneBatch = 512
	// checkpointEvery is how many commits may pile up in the WAL before the
	// background connection checkpoints it.
	checkpointEvery = 200
	busyTimeoutMs   = 5000
	// freshMax bounds Outbox.fresh: the forwarder reads a checkin right
	// after its Enqueue, so a few would do; offline the oldest go (the
	// reads after the reconnect take them from the database).
	freshMax = 32
)

// Opts configures an Outbox. The zero value is usable.
type Opts struct {
	// MaxBytes bounds what the queue keeps: checkins (body + EntryOverhead)
	// and history rows (HistoryRowBytes each); 0 → 256 MiB. Beyond it taps
	// get ErrFull. The history never takes more than half of it (the oldest
	// rows are pruned first).
	MaxBytes int64
	// MinFreeBytes refuses new checkins when the filesystem has less free;
	// 0 → 32 MiB; <0 → no check; between 0 and DrainRoom → DrainRoom.
	MinFreeBytes int64
	// ReserveBytes, when > 0, keeps a file of that size beside the database
	// (path + ".reserve", allocated for real) that is deleted when a delete
	// or checkpoint finds the disk full, so that the drain can go on; it is
	// made again once the disk has room. 0 → none (tests, simulators);
	// DefaultReserveBytes is meant for kiosks.
	ReserveBytes int64
	// SeqFile, when set, is the file that keeps seq's high-water mark
	// outside the database, so that a new or recovered database continues
	// above every seq ever used (put it beside the device identity). ""
	// → seq continues from the database only.
	SeqFile string
	Clock   clock.Clock                       // nil → clock.Real{}
	Logger  *slog.Logger                      // nil → discard
	NewID   func(t time.Time) (string, error) // nil → UUIDv7 built from t
}

func (o Opts) withDefaults() Opts {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.MinFreeBytes > 0 && o.MinFreeBytes < DrainRoom {
		o.MinFreeBytes = DrainRoom
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
	return o
}

// Entry is one checkin to queue.
type Entry struct {
	// Chip, EventID, Bucket are the local history key for the constraint
	// pre-filter; Bucket "" writes no history row. Buckets as
	// protocol.PeriodBucket makes them expire with their period (see
	// PruneHistory).
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
	Bytes          int64     // counted against MaxBytes: checkins (body + EntryOverhead) and history rows
	HistoryRows    int       // rows in the local history (HistoryRowBytes each, in Bytes)
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
		insCheckin, insHistory, used, insVoid, voidCheckin, voidHistory *sql.Stmt // on w
		addOutcome                                                      *sql.Stmt // on w
		delCheckins, delHistory, setLastSeq                             *sql.Stmt // on d
		pending, oldest                                                 *sql.Stmt // on the pool
	}

	mu          sync.Mutex // guards everything below and the use of w and d
	closed      bool
	lastSeq     int64 // highest seq assigned
	reserved    int64 // highest seq the seq file allows (math.MaxInt64 without one)
	metaSeq     int64 // meta.last_seq as on disk
	pending     int
	bytes       int64 // checkins: bodies + EntryOverhead each
	histRows    int64
	commits     int
	unvoided    []voidRec // failed taps whose void record is not yet on disk
	reserveGone bool      // the reserve file was given up (or could not be made)
	// freshMu guards fresh, freshAfter and freshHits, so that Pending
	// never waits for mu: a write holds mu through its commit, and the
	// forwarder's loop, which reads the next checkins while the deletes of
	// the Results it had commit, would wait for every one. Taken after mu,
	// never before, and never held across I/O.
	freshMu sync.Mutex
	// fresh is the checkins enqueued that no Pending has read past yet, in
	// seq order, at most freshMax: every pending checkin with a seq above
	// freshAfter is in it, and nothing else. Pending serves a read beyond
	// freshAfter from it without a query: the forwarder reads each checkin
	// right after its Enqueue, and that read was a query per tap.
	fresh      []Item
	freshAfter int64
	freshHits  int // Pending calls served from fresh (tests)

	voids atomic.Pointer[map[string]bool] // ids of failed taps: never returned by Pending

	seqMu      sync.Mutex // serialises seq file writes; taken after mu, never before
	seqWritten int64      // what the seq file says, as last written

	outc outcomes // outcome.go; its own lock, never held across I/O

	ckptKick  chan struct{}
	pruneKick chan struct{}
	quit      chan struct{}
	maintDone chan struct{}
	pruneT    clock.Timer
	outT      clock.Timer // writes refusal counts (outcome.go)
}

// writer is a connection kept for writes, with its transaction statements.
type writer struct {
	c                       *sql.Conn
	begin, commit, rollback *sql.Stmt
}

// Open opens the outbox database at path, or creates it when there is none,
// applies the embedded migrations and checks the file is writable.
//
// Open never deletes, overwrites or replaces an existing file. When the path
// holds something that is not a usable queue (see ErrUnusable) it returns an
// error wrapping ErrUnusable that names the file and what is wrong with it;
// the caller may then SetAside the file and Open again. Other failures (a
// missing or read-only directory, permissions) wrap ErrStorage.
//
// A new database is made under a temporary name (path + ".new") and renamed
// into place once its schema is committed, so a crash while creating one
// never leaves a half-made queue behind.
func Open(path string, o Opts) (*Outbox, error) {
	o = o.withDefaults()
	ob := &Outbox{path: path, o: o, log: o.Logger, clk: o.Clock,
		ckptKick: make(chan struct{}, 1), pruneKick: make(chan struct{}, 1),
		quit: make(chan struct{}), maintDone: make(chan struct{})}
	ob.voids.Store(&map[string]bool{})
	if err := checkDir(path); err != nil {
		return nil, fmt.Errorf("queue: open %s: %w: %w", path, ErrStorage, err)
	}
	// On a full disk SQLite cannot even make the -shm file a WAL database
	// needs: the reserve is what lets the queue open and drain.
	if free, ok := freeBytes(filepath.Dir(path)); ok && free < DrainRoom/2 {
		ob.releaseReserve("open")
	}
	exists, err := inspect(path)
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	if !exists {
		if err := create(path); err != nil {
			return nil, openErr(path, "create", err)
		}
		ob.log.Info("queue: created a new database", "path", path)
	}
	if err := ob.open(); err != nil {
		ob.closeDB()
		return nil, openErr(path, "open", err)
	}
	if err := ob.openSeq(); err != nil {
		ob.closeDB()
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	if err := ob.dropVoided(); err != nil {
		ob.closeDB()
		return nil, openErr(path, "void", err)
	}
	// Created here, not in the goroutine, so that a fake clock advanced
	// right after Open fires it.
	ob.pruneT = ob.clk.NewTimer(pruneEvery)
	ob.outT = ob.clk.NewTimer(outcomeFlushEvery)
	ob.outT.Stop() // armed by the first count to write (outcome.go)
	go ob.maintain()
	return ob, nil
}

// DSN returns the data source name the outbox uses for path: WAL,
// synchronous=FULL, a busy timeout, a WAL size limit and, unless
// autoCheckpoint, no checkpoints inside commits (the outbox runs them
// itself). Exported for benchmarks.
func DSN(path string, autoCheckpoint bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if !autoCheckpoint {
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", WALLimit))
	}
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (ob *Outbox) open() error {
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
	var maxSeq, n, body, voidSeq sql.NullInt64
	if err := ob.w.c.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'last_seq'").Scan(&ob.metaSeq); err != nil {
		return err
	}
	if err := ob.w.c.QueryRowContext(ctx, "SELECT max(seq), count(*), sum(length(body)) FROM checkin").Scan(&maxSeq, &n, &body); err != nil {
		return err
	}
	if err := ob.w.c.QueryRowContext(ctx, "SELECT count(*) FROM history").Scan(&ob.histRows); err != nil {
		return err
	}
	if err := ob.w.c.QueryRowContext(ctx, "SELECT max(seq) FROM void").Scan(&voidSeq); err != nil {
		return err
	}
	ob.lastSeq = max(ob.metaSeq, maxSeq.Int64, voidSeq.Int64)
	ob.freshAfter = ob.lastSeq // every pending checkin is at or below it
	ob.pending = int(n.Int64)
	ob.bytes = body.Int64 + n.Int64*EntryOverhead
	if err := ob.loadOutcomes(ctx); err != nil {
		return err
	}
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
	s.insVoid = p(ob.w.c, "INSERT OR IGNORE INTO void (id, seq, at) VALUES (?, ?, ?)")
	s.addOutcome = p(ob.w.c, "INSERT INTO outcome (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + excluded.n")
	s.voidCheckin = p(ob.w.c, "DELETE FROM checkin WHERE id = ? RETURNING length(body)")
	s.voidHistory = p(ob.w.c, "DELETE FROM history WHERE chip_key = ? AND event_id = ? AND bucket = ? AND id = ?")
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

// Close checkpoints the WAL, lowers the seq file to the last seq used (so
// that a clean restart leaves no gap) and closes the database. Calls after
// Close return ErrClosed.
func (ob *Outbox) Close() error {
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return nil
	}
	ob.closed = true
	close(ob.quit) // Pending's sign of closed (it does not take mu)
	ob.mu.Unlock()
	<-ob.maintDone
	ob.pruneT.Stop()
	ob.outT.Stop()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.flushOutcomes(context.Background())
	if _, err := ob.w.c.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		ob.log.Warn("queue: checkpoint at close", "err", err)
	}
	if len(ob.unvoided) == 0 {
		ob.lowerSeq(ob.lastSeq)
	}
	if err := ob.closeDB(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

func (ob *Outbox) closeDB() error {
	s := &ob.stmts
	for _, st := range []*sql.Stmt{s.insCheckin, s.insHistory, s.used, s.insVoid, s.voidCheckin, s.voidHistory, s.addOutcome,
		s.delCheckins, s.delHistory, s.setLastSeq, s.pending, s.oldest,
		ob.w.begin, ob.w.commit, ob.w.rollback, ob.d.begin, ob.d.commit, ob.d.rollback} {
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

// committed counts a commit and wakes the checkpointer every
// checkpointEvery commits: 200 taps write about 2.4 MiB of WAL, within
// WALLimit. (Writes off the tap path also check the WAL's size, in
// afterWrite: a stat per tap measured 70 µs more per tap.) ob.mu held.
func (ob *Outbox) committed() {
	ob.commits++
	if ob.commits >= checkpointEvery {
		ob.commits = 0
		kick(ob.ckptKick)
	}
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
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
//
// When it returns an error the checkin is not pending and never will be:
// a commit that failed after its frames reached the WAL is voided (see
// void.go) before Enqueue returns.
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
	// The transaction runs to its end whatever ctx does: an interrupted
	// COMMIT would leave the caller unsure whether the tap is on disk.
	wctx := context.WithoutCancel(ctx)
	if err := ob.resolveVoids(wctx); err != nil {
		return Item{}, storageErr("enqueue: an earlier failed tap is not yet voided on disk", err)
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
	if e.Bucket != "" {
		cost += HistoryRowBytes
	}
	if used := ob.usedBytes(); used+cost > ob.o.MaxBytes {
		if ob.histRows*HistoryRowBytes > ob.o.MaxBytes/2 {
			kick(ob.pruneKick) // the history is over its share: prune the oldest
		}
		return Item{}, fmt.Errorf("queue: enqueue: %d bytes queued, max %d: %w", used, ob.o.MaxBytes, ErrFull)
	}
	if ob.o.MinFreeBytes > 0 {
		if free, ok := freeBytes(filepath.Dir(ob.path)); ok && free < ob.o.MinFreeBytes+cost {
			// Pages that delivered checkins freed inside the database are
			// reused before the file grows: a queue that filled the disk and
			// drained takes taps again although the file did not shrink.
			if free += ob.reusableBytes(wctx); free < ob.o.MinFreeBytes+cost {
				return Item{}, fmt.Errorf("queue: enqueue: %d bytes free on the filesystem (with the database's free pages), min %d: %w", free, ob.o.MinFreeBytes, ErrFull)
			}
		}
	}
	if seq > ob.reserved {
		// Rare: the maintainer reserves the next block ahead of time.
		if err := ob.reserveSeq(seq + SeqBlock - 1); err != nil {
			return Item{}, storageErr("enqueue: reserve seq", err)
		}
	} else if ob.reserved-seq < SeqBlock/4 {
		kick(ob.ckptKick)
	}
	// From here on the seq counts as used even on failure: a commit that
	// failed ambiguously may still be on disk, and a seq is never reused.
	ob.lastSeq = seq
	key := chipKey(e.Chip)
	ms := now.UnixMilli()
	counts := ob.takeOutcomes(true)
	err = ob.tx(wctx, &ob.w, func() error {
		if _, err := ob.stmts.insCheckin.ExecContext(wctx, seq, id, ms, key, e.EventID, e.Bucket, body); err != nil {
			return err
		}
		if e.Bucket != "" {
			if _, err := ob.stmts.insHistory.ExecContext(wctx, key, e.EventID, e.Bucket, id, ms); err != nil {
				return err
			}
		}
		return ob.writeOutcomes(wctx, counts)
	})
	ob.settleOutcomes(counts, err == nil, true)
	if err != nil {
		ob.void(wctx, voidRec{id: id, seq: seq, key: key, event: e.EventID, bucket: e.Bucket}, err)
		return Item{}, storageErr("enqueue", err)
	}
	ob.pending++
	ob.bytes += int64(len(body)) + EntryOverhead
	if e.Bucket != "" {
		ob.histRows++
		if ob.histRows*HistoryRowBytes > ob.o.MaxBytes/2 {
			kick(ob.pruneKick) // over its share: the oldest rows go, off the tap path
		}
	}
	// As Pending reads it from the database: its own copy of the body, the
	// time in milliseconds.
	ob.addFresh(Item{ID: id, Seq: seq, Body: slices.Clone(body), QueuedAt: time.UnixMilli(ms)})
	return Item{ID: id, Seq: seq, Body: body, QueuedAt: now}, nil
}

// addFresh appends a committed checkin, the newest, to fresh; beyond
// freshMax the oldest goes and freshAfter moves up to it. ob.mu held.
func (ob *Outbox) addFresh(it Item) {
	ob.freshMu.Lock()
	defer ob.freshMu.Unlock()
	if len(ob.fresh) >= freshMax {
		ob.freshAfter = ob.fresh[0].Seq
		ob.fresh[0] = Item{}
		ob.fresh = ob.fresh[1:]
	}
	ob.fresh = append(ob.fresh, it)
}

// pendingFresh is Pending served from fresh, when the read is beyond
// freshAfter (ok false: it is not, ask the database). What it returns, and
// anything before it, is forgotten: the next read starts beyond it, and the
// caller owns the items. ob.freshMu held.
func (ob *Outbox) pendingFresh(afterSeq int64, limit int) (items []Item, ok bool) {
	if afterSeq < ob.freshAfter {
		return nil, false
	}
	ob.freshHits++
	voids := *ob.voids.Load()
	i := 0
	for ; i < len(ob.fresh) && (limit < 0 || len(items) < limit); i++ { // LIMIT -1: no limit, as SQLite's
		if it := ob.fresh[i]; it.Seq > afterSeq && !voids[it.ID] {
			items = append(items, it)
		}
	}
	if i > 0 {
		ob.freshAfter = ob.fresh[i-1].Seq
		clear(ob.fresh[:i])
		ob.fresh = ob.fresh[i:]
		if len(ob.fresh) == 0 {
			ob.fresh = nil
		}
	}
	return items, true
}

// forgetFresh drops the checkins Done deleted from fresh. ob.mu held.
func (ob *Outbox) forgetFresh(gone func(id string) bool) {
	ob.freshMu.Lock()
	defer ob.freshMu.Unlock()
	if len(ob.fresh) == 0 {
		return
	}
	ob.fresh = slices.DeleteFunc(ob.fresh, func(it Item) bool { return gone(it.ID) })
}

// reusableBytes is the space of the database's free pages, less what a
// tap's commit itself needs: new rows go there before the file grows.
// ob.mu held.
func (ob *Outbox) reusableBytes(ctx context.Context) int64 {
	var pages, size int64
	if ob.w.c.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&pages) != nil ||
		ob.w.c.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size) != nil {
		return 0
	}
	return max(0, pages-16) * size
}

// usedBytes is what counts against MaxBytes. ob.mu held.
func (ob *Outbox) usedBytes() int64 { return ob.bytes + ob.histRows*HistoryRowBytes }

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

func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

// isFull reports whether err is SQLite's "database or disk is full".
func isFull(err error) bool {
	c, ok := sqliteCode(err)
	return ok && c&0xff == sqlite3.SQLITE_FULL
}

func storageErr(op string, err error) error {
	if errors.Is(err, ErrFull) || errors.Is(err, ErrStorage) {
		return fmt.Errorf("queue: %s: %w", op, err)
	}
	if isFull(err) || isENOSPC(err) {
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
// order. A tap whose Enqueue failed is never among them. A read beyond the
// last one (the forwarder's, after a kick) is answered from memory when it
// can be (fresh), the same answer as the database's.
func (ob *Outbox) Pending(ctx context.Context, afterSeq int64, limit int) ([]Item, error) {
	select {
	case <-ob.quit:
		return nil, fmt.Errorf("queue: pending: %w", ErrClosed)
	default:
	}
	if err := ctx.Err(); err != nil { // as the query would
		return nil, storageErr("pending", err)
	}
	ob.freshMu.Lock()
	fresh, ok := ob.pendingFresh(afterSeq, limit)
	ob.freshMu.Unlock()
	if ok {
		return fresh, nil
	}
	voids := *ob.voids.Load()
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
		if voids[it.ID] {
			continue
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
// acks[i].ID was pending (a repeated id is known only the first time). Keep
// batches at most MaxDoneBatch long: the WAL must hold the whole
// transaction.
//
// A full disk does not stop it while there is a way out: it checkpoints the
// WAL into the database (TRUNCATE, which gives the WAL's space back) and
// tries again, and then once more after giving up the reserve file. Only
// then does it fail with ErrFull; the checkins stay pending.
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
	var removedBytes, maxSeq, droppedHist int64
	run := func() error {
		clear(known)
		removed, removedBytes, maxSeq, droppedHist = 0, 0, 0, 0
		return ob.tx(wctx, &ob.d, func() error {
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
				r, err := ob.stmts.delHistory.ExecContext(wctx, h.key, h.ev, h.bucket, h.id)
				if err != nil {
					return err
				}
				n, _ := r.RowsAffected()
				droppedHist += n
			}
			if maxSeq > ob.metaSeq {
				if _, err := ob.stmts.setLastSeq.ExecContext(wctx, maxSeq, maxSeq); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := ob.withRoom(wctx, "done", run); err != nil {
		return nil, storageErr("done", err)
	}
	ob.metaSeq = max(ob.metaSeq, maxSeq)
	ob.pending -= removed
	ob.bytes -= removedBytes
	ob.histRows -= droppedHist
	ob.forgetFresh(func(id string) bool { i, ok := first[id]; return ok && known[i] })
	ob.afterWrite(wctx)
	return known, nil
}

// Counts returns the counters kept in memory: Stats without
// OldestQueuedAt, which takes a query while checkins are pending. For
// callers that poll (the fleet simulator's watch over thousands of queues)
// or need only the seq.
func (ob *Outbox) Counts() (Stats, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return Stats{}, fmt.Errorf("queue: counts: %w", ErrClosed)
	}
	return Stats{Pending: ob.pending, Bytes: ob.usedBytes(), HistoryRows: int(ob.histRows), LastSeq: ob.lastSeq}, nil
}

// Stats returns the counters kept in memory and the oldest queued time.
func (ob *Outbox) Stats(ctx context.Context) (Stats, error) {
	s, err := ob.Counts()
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", ErrClosed)
	}
	if s.Pending == 0 {
		return s, nil
	}
	var ms int64
	err = ob.stmts.oldest.QueryRowContext(ctx).Scan(&ms)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Stats{}, storageErr("stats", err)
	default:
		s.OldestQueuedAt = time.UnixMilli(ms)
	}
	return s, nil
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
