package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Disk space.
//
// Taps are refused (ErrFull) once the filesystem has less than
// MinFreeBytes (default 32 MiB, never below DrainRoom = 8 MiB) free. Draining
// a backlog needs space too, and must get it from under that floor: a
// delete appends its pages to the WAL, and a checkpoint copies the WAL into
// the database. What the drain needs is bounded:
//
//   - the WAL: checkpointed after checkpointEvery (200) commits (200 taps
//     write about 2.4 MiB), and a write off the tap path (a delete
//     transaction of at most MaxDoneBatch = 512 checkins, about 0.3 MiB of
//     WAL; a prune chunk; a salvage batch) that leaves it larger than
//     WALLimit (4 MiB) checkpoints it right away (RESTART, so the next write
//     starts the WAL over); journal_size_limit cuts the file back to 4 MiB
//     when SQLite starts it over. So the WAL peaks at about 4.5 MiB (4.1 MiB
//     measured draining 64 000 checkins, TestDrainOnFullDisk);
//   - the database file does not grow while draining: deleted rows free
//     pages inside it, which the next taps reuse;
//   - the seq file: one block (4 KiB) per SeqBlock taps.
//
// So the drain needs about 5 MiB, DrainRoom (8 MiB) covers it, and the
// default floor of 32 MiB leaves room to spare for the rest of the system.
// Before these bounds a 34 000-checkin drain grew the WAL to 10.7 MiB.
//
// A queue that filled the disk and drained keeps its file size (SQLite
// does not shrink it; VACUUM would rewrite it all on the SD card): the
// floor counts the database's free pages as room, since new taps reuse
// them before the file grows.
//
// On a disk full at start, SQLite cannot even make the -shm file a WAL
// database needs: Open gives up the reserve first when less than
// DrainRoom/2 is free.
//
// When something else takes the floor too (a log, another program) and the
// disk is full: a delete that fails with "disk full" checkpoints with
// TRUNCATE (the WAL's space goes back to the filesystem) and tries again;
// if that fails too, the reserve file (Opts.ReserveBytes, DefaultReserveBytes
// = 8 MiB, allocated for real beside the database) is deleted and the delete
// tried once more. The maintainer makes the reserve again once the disk has
// MinFreeBytes + ReserveBytes free.

// WALLimit is the size of WAL beyond which the outbox checkpoints at once
// and to which SQLite truncates the WAL file when it starts it over.
const WALLimit = 4 << 20

// walSize is the WAL file's size (0 when it cannot be read).
func (ob *Outbox) walSize() int64 {
	st, err := os.Stat(ob.path + "-wal")
	if err != nil {
		return 0
	}
	return st.Size()
}

// afterWrite checkpoints at once when a write off the tap path left the WAL
// over its limit, so that the drain's WAL stays bounded. ob.mu held.
func (ob *Outbox) afterWrite(ctx context.Context) {
	if ob.walSize() <= WALLimit {
		return
	}
	if err := ob.checkpoint(ctx, "RESTART"); err != nil {
		ob.log.Warn("queue: checkpoint", "mode", "RESTART", "err", err)
	}
}

// checkpoint runs a WAL checkpoint of the given mode (PASSIVE, RESTART,
// TRUNCATE). A checkpoint that finds the disk full gives up the reserve and
// tries once more. ob.mu held.
func (ob *Outbox) checkpoint(ctx context.Context, mode string) error {
	run := func() error {
		var busy, logFrames, done int
		err := ob.d.c.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logFrames, &done)
		if err == nil && busy != 0 && mode != "PASSIVE" {
			return fmt.Errorf("checkpoint %s: busy (%d of %d frames)", mode, done, logFrames)
		}
		return err
	}
	err := run()
	if (isFull(err) || isENOSPC(err)) && ob.releaseReserve("checkpoint") {
		err = run()
	}
	return err
}

// withRoom runs a write transaction; when it fails because the disk is full
// it makes room (see the comment at the top) and tries again. ob.mu held.
func (ob *Outbox) withRoom(ctx context.Context, op string, run func() error) error {
	err := run()
	if !isFull(err) {
		return err
	}
	ob.log.Warn("queue: disk full; checkpointing to give the WAL's space back", "op", op, "walBytes", ob.walSize())
	if cerr := ob.checkpoint(ctx, "TRUNCATE"); cerr != nil {
		ob.log.Warn("queue: checkpoint on a full disk", "err", cerr)
	}
	if err = run(); !isFull(err) {
		return err
	}
	if !ob.releaseReserve(op) {
		return err
	}
	if cerr := ob.checkpoint(ctx, "TRUNCATE"); cerr != nil {
		ob.log.Warn("queue: checkpoint on a full disk", "err", cerr)
	}
	return run()
}

func (ob *Outbox) reservePath() string { return ob.path + ".reserve" }

// releaseReserve deletes the reserve file; it reports whether that freed
// anything. ob.mu held.
func (ob *Outbox) releaseReserve(op string) bool {
	if ob.o.ReserveBytes <= 0 {
		return false
	}
	p := ob.reservePath()
	st, err := os.Stat(p)
	if err != nil {
		ob.reserveGone = true
		return false
	}
	if err := os.Remove(p); err != nil {
		ob.log.Error("queue: disk full and the reserve file cannot be deleted", "path", p, "err", err)
		return false
	}
	ob.reserveGone = true
	ob.log.Warn("queue: disk full: gave up the reserve file so that the drain goes on",
		"op", op, "path", p, "bytes", st.Size())
	return st.Size() > 0
}

// keepReserve makes the reserve file when there is none and the disk has
// MinFreeBytes + ReserveBytes free (never pushing the disk under the floor
// itself). The maintainer calls it without ob.mu.
func (ob *Outbox) keepReserve() {
	n := ob.o.ReserveBytes
	if n <= 0 {
		return
	}
	p := ob.reservePath()
	if st, err := os.Stat(p); err == nil && st.Size() >= n {
		return
	}
	free, ok := freeBytes(filepath.Dir(ob.path))
	if !ok || free < max(ob.o.MinFreeBytes, 0)+n {
		return
	}
	if err := allocateFile(p, n); err != nil {
		ob.log.Warn("queue: make the reserve file", "path", p, "err", err)
		os.Remove(p)
		return
	}
	ob.mu.Lock()
	was := ob.reserveGone
	ob.reserveGone = false
	ob.mu.Unlock()
	if was {
		ob.log.Info("queue: reserve file made again", "path", p, "bytes", n)
	}
}

// isENOSPC reports a full disk seen outside SQLite (seq file, reserve).
func isENOSPC(err error) bool {
	return errors.Is(err, syscall.ENOSPC)
}

// allocateFile makes a file of n bytes whose blocks are allocated for real
// (not a sparse file), synced.
func allocateFile(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := allocate(f, n); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// maintain runs off the tap path until Close: WAL checkpoints when kicked,
// the next seq block, the reserve file, and the history prune at open and
// every pruneEvery.
func (ob *Outbox) maintain() {
	defer close(ob.maintDone)
	ctx := context.Background()
	ob.keepReserve()
	ob.prune(ctx)
	for {
		select {
		case <-ob.quit:
			return
		case <-ob.ckptKick:
			// It holds the writer lock meanwhile, so the checkpoint
			// completes and the next commit rewinds the WAL to its start
			// (overwriting a file in place syncs cheaper than growing it); a
			// concurrent checkpoint measured clearly slower taps. Taps come
			// seconds apart, so one rarely waits for it.
			ob.mu.Lock()
			if !ob.closed {
				if err := ob.checkpoint(ctx, "PASSIVE"); err != nil {
					ob.log.Warn("queue: checkpoint", "err", err)
				}
			}
			gone := ob.reserveGone
			ob.mu.Unlock()
			ob.reserveAhead()
			if gone {
				ob.keepReserve()
			}
		case <-ob.pruneKick:
			ob.prune(ctx)
		case <-ob.outT.C():
			ob.flushDue(ctx)
		case <-ob.pruneT.C():
			ob.prune(ctx)
			ob.keepReserve()
			ob.pruneT.Reset(pruneEvery)
		}
	}
}
