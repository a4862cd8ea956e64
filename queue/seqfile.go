package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// seq is never reused, whatever happens to the database (deleted, set aside,
// restored from an old copy): Opts.SeqFile keeps a high-water mark outside
// it. The file says `{"v":1,"reserved":N}`: no seq above N has been
// assigned. The outbox reserves seqs in blocks: before it assigns a seq
// above N it writes N+SeqBlock durably (a temporary file, fsync, rename,
// fsync of the directory), so the tap path pays those fsyncs once per
// SeqBlock taps at most, and in practice never (the maintainer reserves the
// next block when a quarter of the current one is left). Open continues
// above max(N, the database's own high-water mark); Close writes the last
// seq used back, so that a clean restart leaves no gap (a crash leaves one
// of at most SeqBlock).
//
// A seq file that exists but cannot be read or parsed fails Open (wrapping
// ErrStorage, not ErrUnusable: it is not the database that is wrong): the
// outbox cannot know how far to continue, and guessing could reuse seqs. It
// is written only by atomic rename, so only a broken filesystem corrupts it.

// SeqBlock is how many seqs one write of the seq file reserves.
const SeqBlock = 1024

type seqDoc struct {
	V        int   `json:"v"`
	Reserved int64 `json:"reserved"`
}

// ReadSeqFile returns the high-water mark in a seq file (0, nil when there
// is none): no seq above it has ever been assigned by an outbox using it.
func ReadSeqFile(path string) (int64, error) {
	n, err := readSeqFile(path)
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	return n, nil
}

func readSeqFile(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("seq file %s: cannot read it: %w: %w", path, ErrStorage, err)
	}
	var d seqDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil || d.V != 1 || d.Reserved < 0 {
		return 0, fmt.Errorf("seq file %s: not a seq file (%d bytes, want {\"v\":1,\"reserved\":N}); "+
			"the next seq cannot be known safely: move it aside only if seq may continue from the queue database: %w",
			path, len(b), ErrStorage)
	}
	return d.Reserved, nil
}

// writeSeqFile replaces the seq file atomically and durably.
func writeSeqFile(path string, reserved int64) error {
	b, _ := json.Marshal(seqDoc{V: 1, Reserved: reserved})
	b = append(b, '\n')
	return writeFileAtomic(path, b)
}

// writeFileAtomic writes b to path via a temporary file: write, fsync,
// rename, fsync of the directory.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// openSeq reads the seq file at Open and reserves the first block.
func (ob *Outbox) openSeq() error {
	if ob.o.SeqFile == "" {
		ob.reserved = math.MaxInt64
		return nil
	}
	n, err := readSeqFile(ob.o.SeqFile)
	if err != nil {
		return err
	}
	if n > ob.lastSeq {
		ob.log.Info("queue: seq continues above the seq file's high-water mark", "dbLastSeq", ob.lastSeq, "seqFile", n)
		ob.lastSeq = n
	}
	ob.seqWritten = n
	ob.reserved = n
	if err := ob.reserveSeq(ob.lastSeq + SeqBlock); err != nil {
		return fmt.Errorf("seq file %s: %w: %w", ob.o.SeqFile, ErrStorage, err)
	}
	return nil
}

// reserveSeq makes the seq file allow seqs up to target (never lowering
// it) and raises ob.reserved to what the file says. ob.mu held.
func (ob *Outbox) reserveSeq(target int64) error {
	got, err := ob.writeReserve(target)
	if err != nil {
		return err
	}
	ob.reserved = max(ob.reserved, got)
	return nil
}

// writeReserve writes target to the seq file unless it already allows as
// much; it returns what the file allows. It takes seqMu only, so the
// maintainer calls it without ob.mu.
func (ob *Outbox) writeReserve(target int64) (int64, error) {
	ob.seqMu.Lock()
	defer ob.seqMu.Unlock()
	if target <= ob.seqWritten {
		return ob.seqWritten, nil
	}
	if err := writeSeqFile(ob.o.SeqFile, target); err != nil {
		return ob.seqWritten, err
	}
	ob.seqWritten = target
	return target, nil
}

// reserveAhead reserves the next block once a quarter of the current one is
// left, off the tap path (the maintainer).
func (ob *Outbox) reserveAhead() {
	if ob.o.SeqFile == "" {
		return
	}
	ob.mu.Lock()
	closed, last, res := ob.closed, ob.lastSeq, ob.reserved
	ob.mu.Unlock()
	if closed || res-last >= SeqBlock/4 {
		return
	}
	got, err := ob.writeReserve(last + SeqBlock)
	if err != nil {
		ob.log.Warn("queue: reserve the next seq block", "file", ob.o.SeqFile, "err", err)
		return
	}
	ob.mu.Lock()
	ob.reserved = max(ob.reserved, got)
	ob.mu.Unlock()
}

// lowerSeq writes the last seq used back at Close: everything above it is
// free again, since nothing can be assigned any more. ob.mu held, closed.
func (ob *Outbox) lowerSeq(last int64) {
	if ob.o.SeqFile == "" {
		return
	}
	ob.seqMu.Lock()
	defer ob.seqMu.Unlock()
	if last >= ob.seqWritten {
		return
	}
	if err := writeSeqFile(ob.o.SeqFile, last); err != nil {
		ob.log.Warn("queue: seq file at close", "file", ob.o.SeqFile, "err", err)
		return
	}
	ob.seqWritten = last
}
