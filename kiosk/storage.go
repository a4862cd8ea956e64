package kiosk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
)

// An unusable queue database (corrupt, truncated, foreign, a directory) is
// never deleted, overwritten or silently replaced: kioskd moves it aside
// with a timestamp, records that in faultFile, opens a fresh queue (its seq
// continues above every seq ever used: queue.Opts.SeqFile) and refuses every
// tap with the storage-error screen until a technician chooses:
// `kioskctl queue recover` salvages the readable checkins of the set-aside
// file into the fresh queue, `kioskctl queue reset -force` gives them up.
// The record survives restarts, so a reboot does not quietly lift the
// refusal.
const (
	faultFile = "queue-fault.json"
	seqFile   = "queue.seq"
)

// storageFault is the record of a queue set aside.
type storageFault struct {
	Aside  string `json:"aside"`  // where the unusable database went
	Reason string `json:"reason"` // why it was unusable
	At     string `json:"at"`
}

// storageState is the queue's standing, guarded by mu.
type storageState struct {
	mu      sync.Mutex
	fault   *storageFault
	warning string // something a technician should know, not a fault
}

func (s *storageState) get() (*storageFault, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.warning
}

// ErrStorageFault is why the core's enqueue fails while a set-aside queue
// waits for a technician.
var ErrStorageFault = errors.New("kiosk: the queue database was unusable and is set aside; taps are refused until `kioskctl queue recover` or `kioskctl queue reset -force`")

// gateOutbox is the outbox as the core sees it: the real one, closed to new
// checkins while the storage fault stands.
type gateOutbox struct{ k *Kiosk }

func (g *gateOutbox) Used(ctx context.Context, chip, eventID, bucket string) (int, error) {
	return g.k.ob.Used(ctx, chip, eventID, bucket)
}

func (g *gateOutbox) CountOutcome(outcome string) { g.k.ob.CountOutcome(outcome) }

func (g *gateOutbox) Enqueue(ctx context.Context, e queue.Entry) (queue.Item, error) {
	if f, _ := g.k.storage.get(); f != nil {
		return queue.Item{}, ErrStorageFault
	}
	return g.k.ob.Enqueue(ctx, e)
}

func (k *Kiosk) queueOpts() queue.Opts {
	return queue.Opts{MaxBytes: k.cfg.Queue.MaxBytes, MinFreeBytes: k.cfg.Queue.MinFreeBytes, ReserveBytes: k.cfg.Queue.ReserveBytes,
		SeqFile: filepath.Join(k.cfg.StateDir, seqFile),
		Clock:   k.o.Clock, Logger: k.o.Logger.With("part", "queue")}
}

// openQueue opens the outbox, setting an unusable one aside.
func (k *Kiosk) openQueue() error {
	k.gate.k = k
	path := k.cfg.QueuePath()
	fault, err := readFault(k.cfg.StateDir)
	if err != nil {
		return err
	}
	fi, statErr := os.Lstat(path)
	if statErr == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("kiosk: %s %w", path, errLink)
	}
	existed := statErr == nil && (!fi.Mode().IsRegular() || fi.Size() > 0)
	_, idErr := os.Stat(filepath.Join(k.cfg.StateDir, provisioning.IdentityFile))
	known := idErr == nil
	ob, err := queue.Open(path, k.queueOpts())
	if errors.Is(err, queue.ErrUnusable) {
		now := k.o.Clock.Now()
		aside, aerr := queue.SetAside(path, now)
		if aerr != nil {
			return fmt.Errorf("kiosk: %w; and it cannot be set aside: %v", err, aerr)
		}
		fault = &storageFault{Aside: aside, Reason: err.Error(), At: protocol.FormatTime(now)}
		if werr := writeFault(k.cfg.StateDir, fault); werr != nil {
			return fmt.Errorf("kiosk: %w (set aside as %s)", werr, aside)
		}
		k.log.Error("queue database unusable: set aside, taps refused until a technician runs `kioskctl queue recover` or `kioskctl queue reset -force`",
			"file", path, "asideAs", aside, "err", err)
		existed = true // not a loss to warn about: the file is kept
		ob, err = queue.Open(path, k.queueOpts())
	}
	if err != nil {
		return fmt.Errorf("kiosk: %w", err)
	}
	k.ob = ob
	k.halt = append(k.halt, ob.Close)
	if fault != nil {
		k.storage.fault = fault
		if existed {
			k.log.Error("queue set aside earlier is waiting for a technician: taps refused",
				"asideAs", fault.Aside, "since", fault.At)
		}
		return nil
	}
	if !existed && known {
		st, _ := ob.Stats(context.Background())
		k.storage.warning = fmt.Sprintf("queue.db was missing or empty though this kiosk has an identity; a fresh queue started (seq continues above %d)", st.LastSeq)
		k.log.Warn("queue database missing or empty next to an existing identity: checkins that were pending in it are lost; a fresh queue continues seq",
			"file", path, "seqAbove", st.LastSeq)
	}
	return nil
}

// StorageFault reports whether a set-aside queue waits for a technician.
func (k *Kiosk) StorageFault() bool {
	f, _ := k.storage.get()
	return f != nil
}

func faultPath(dir string) string { return filepath.Join(dir, faultFile) }

// readFault reads the record of a queue set aside; nil when there is none.
func readFault(dir string) (*storageFault, error) {
	b, err := os.ReadFile(faultPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kiosk: %s: %w", faultPath(dir), unwrapPath(err))
	}
	var f storageFault
	if err := json.Unmarshal(b, &f); err != nil || f.Aside == "" {
		// A damaged record still means a technician has to look.
		return &storageFault{Reason: fmt.Sprintf("%s is damaged; the set-aside queue's name is lost (look for queue.db.unusable-* in %s)", faultPath(dir), dir)}, nil
	}
	return &f, nil
}

// writeFault records f durably (provisioning.WriteFileAtomic: temporary
// file, fsync, rename, fsync of the directory).
func writeFault(dir string, f *storageFault) error {
	b, _ := json.Marshal(f)
	if err := provisioning.WriteFileAtomic(faultPath(dir), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("kiosk: %s: %w", faultPath(dir), unwrapPath(err))
	}
	return nil
}

// syncDir makes a removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("kiosk: %s: %w", dir, unwrapPath(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("kiosk: fsync %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// clearFault lifts the refusal: the record goes, durably, then the core is
// told.
func (k *Kiosk) clearFault(ctx context.Context) error {
	if err := os.Remove(faultPath(k.cfg.StateDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kiosk: %w", err)
	}
	if err := syncDir(k.cfg.StateDir); err != nil {
		return err
	}
	k.storage.mu.Lock()
	k.storage.fault = nil
	k.storage.mu.Unlock()
	if f := k.up.p.Load(); f != nil {
		f.Rescan() // salvaged checkins keep their older seq
	}
	k.up.StatusChanged()
	k.up.Kick()
	return k.core.RefreshIdle(ctx)
}

// idleOverride decides the idle screen: the storage fault first (the
// passholder must go to the desk), then the pairing code while unprovisioned.
func (k *Kiosk) idleOverride() *display.Screen {
	if f, _ := k.storage.get(); f != nil {
		return &display.Screen{Kind: display.StorageError, Lang: k.cfg.Display.Lang}
	}
	return k.provisioningScreen()
}

// QueueRecoverReply is the control socket's reply to queue-recover.
type QueueRecoverReply struct {
	OK       bool   `json:"ok"`
	Salvaged int    `json:"salvaged"`
	Unread   string `json:"unread,omitempty"` // what could not be read, if anything
	Aside    string `json:"aside"`            // kept; delete it once central has everything
	NextSeq  int64  `json:"nextSeqAbove"`
	Refusing bool   `json:"refusingTaps"`
}

// QueueResetReply is the control socket's reply to queue-reset.
type QueueResetReply struct {
	OK      bool   `json:"ok"`
	GivenUp int    `json:"givenUp"`              // pending checkins in the set-aside file
	Count   string `json:"countError,omitempty"` // why GivenUp may be short
	Aside   string `json:"aside"`
}

func (k *Kiosk) queueRecover(ctx context.Context) any {
	f, _ := k.storage.get()
	if f == nil {
		return control.Fail("the queue is sound and in use: nothing to recover")
	}
	if f.Aside == "" {
		return control.Fail("%s; salvage it by hand or use `kioskctl queue reset -force`", f.Reason)
	}
	n, err := queue.Salvage(f.Aside, k.ob)
	if err != nil && n == 0 {
		return control.Fail("queue: nothing could be salvaged from %s: %v; `kioskctl queue reset -force` gives it up", f.Aside, err)
	}
	r := QueueRecoverReply{OK: true, Salvaged: n, Aside: f.Aside}
	if err != nil {
		r.Unread = err.Error()
	}
	if cerr := k.clearFault(ctx); cerr != nil {
		return control.Fail("salvaged %d checkins but the refusal could not be lifted: %v", n, cerr)
	}
	if st, err := k.ob.Stats(ctx); err == nil {
		r.NextSeq = st.LastSeq
	}
	k.log.Warn("queue recovered by a technician", "salvaged", n, "from", f.Aside, "unread", r.Unread)
	return r
}

func (k *Kiosk) queueReset(ctx context.Context, force bool) any {
	f, _ := k.storage.get()
	if f == nil {
		return control.Fail("the queue is sound and in use: nothing to reset")
	}
	n, cerr := 0, error(nil)
	if f.Aside != "" {
		n, cerr = queue.CountPending(f.Aside)
	}
	if !force {
		if cerr != nil {
			return control.Fail("reset gives up at least %d pending checkins in %s (more may be on unreadable pages: %v); `kioskctl queue recover` salvages the readable ones instead; add -force to give them up", n, f.Aside, cerr)
		}
		return control.Fail("reset gives up %d pending checkins in %s; `kioskctl queue recover` salvages them instead; add -force to give them up", n, f.Aside)
	}
	r := QueueResetReply{OK: true, GivenUp: n, Aside: f.Aside}
	if cerr != nil {
		r.Count = cerr.Error()
	}
	if err := k.clearFault(ctx); err != nil {
		return control.Fail("the refusal could not be lifted: %v", err)
	}
	k.log.Warn("queue reset by a technician: pending checkins given up", "givenUp", n, "aside", f.Aside)
	return r
}
