package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
)

// call sends one request and decodes the reply into v; it returns ok.
func call(tb testing.TB, sock string, req control.Request, v any) bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := control.Call(ctx, sock, req)
	if err != nil {
		tb.Fatal(err)
	}
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	json.Unmarshal(line, &r)
	if v != nil {
		if err := json.Unmarshal(line, v); err != nil {
			tb.Fatalf("%s: %v", line, err)
		}
	}
	if !r.OK {
		tb.Logf("%s: %s", req.Op, r.Error)
	}
	return r.OK
}

// fillQueue puts n pending checkins into the kiosk's queue as kioskd would
// have (with the kiosk's seq file), and returns the highest seq.
func fillQueue(t *testing.T, cfg provisioning.Config, n int) int64 {
	t.Helper()
	os.MkdirAll(cfg.StateDir, 0o700)
	ob, err := queue.Open(cfg.QueuePath(), queue.Opts{MinFreeBytes: -1, SeqFile: filepath.Join(cfg.StateDir, seqFile)})
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range n {
		chip := fmt.Sprintf("04%012X", i)
		it, err := ob.Enqueue(context.Background(), queue.Entry{Chip: chip, EventID: "evt-unit", Bucket: "D2026-12-01",
			Build: func(id string, seq int64) ([]byte, error) {
				return protocol.Checkin{ID: id, Seq: seq, DeviceID: cfg.DeviceID, ChipNumber: chip, EventID: "evt-unit",
					TappedAt: "2026-12-01T10:00:00.000Z", ClockSynced: true}.Encode(), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		last = it.Seq
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return last
}

func asideFiles(t *testing.T, dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "queue.db.unusable-*"))
	var out []string
	for _, f := range m {
		if !strings.HasSuffix(f, "-wal") && !strings.HasSuffix(f, "-shm") {
			out = append(out, f)
		}
	}
	return out
}

// A truncated queue database is set aside, never replaced in silence: taps
// are refused with the storage-error screen, through a restart too, until a
// technician recovers it; then the readable checkins are pending again and
// seq continues above every seq used.
func TestUnusableQueueSetAsideThenRecovered(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "tcp://127.0.0.1:1") // central unreachable: nothing drains
	const n = 3000
	lastSeq := fillQueue(t, cfg, n)
	st, _ := os.Stat(cfg.QueuePath())
	if err := os.Truncate(cfg.QueuePath(), st.Size()*6/10/4096*4096); err != nil {
		t.Fatal(err)
	}

	screens := &screenLog{}
	k, stop := startKiosk(t, cfg, Opts{Display: screens})
	aside := asideFiles(t, cfg.StateDir)
	if len(aside) != 1 {
		t.Fatalf("set-aside files %v", aside)
	}
	s := status(t, cfg.Control.Socket)
	if s.Storage != "fault" || !strings.Contains(strings.Join(s.Warnings, " "), aside[0]) {
		t.Fatalf("status %+v: want storage fault naming %s", s, aside[0])
	}
	if p := k.statusPayload(); p.Storage != "fault" {
		t.Errorf("retained Status %+v: want storage fault", p)
	}
	waitFor(t, "the storage-error screen", func() bool { return screens.last().Kind == display.StorageError })
	if r := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6"); r.Outcome != "storage-error" {
		t.Fatalf("tap with a set-aside queue: %+v", r)
	}
	var reset struct{ Error string }
	if call(t, cfg.Control.Socket, control.Request{Op: "queue-reset"}, &reset) || !strings.Contains(reset.Error, "gives up") {
		t.Fatalf("queue-reset without force: %q", reset.Error)
	}

	// A restart does not lift the refusal.
	stop()
	runKiosk(t, cfg, Opts{})
	if s := status(t, cfg.Control.Socket); s.Storage != "fault" {
		t.Fatalf("after a restart: storage %q", s.Storage)
	}

	var rec QueueRecoverReply
	if !call(t, cfg.Control.Socket, control.Request{Op: "queue-recover"}, &rec) {
		t.Fatal("queue-recover failed")
	}
	t.Logf("recovered: %+v", rec)
	if rec.Salvaged == 0 || rec.Salvaged >= n || rec.Unread == "" || rec.Aside != aside[0] {
		t.Fatalf("recover %+v: want some but not all of %d salvaged, and what was lost said", rec, n)
	}
	s = status(t, cfg.Control.Socket)
	if s.Storage != "ok" || s.Pending != rec.Salvaged {
		t.Fatalf("after recover: %+v", s)
	}
	r := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6")
	if r.Outcome != "saved" || r.Seq <= lastSeq {
		t.Fatalf("tap after recover: %+v; seq must continue above %d", r, lastSeq)
	}
	if _, err := os.Stat(aside[0]); err != nil {
		t.Errorf("the set-aside file is gone: %v", err)
	}
}

// A queue.db that is a directory is set aside too; reset -force gives the
// (unreadable) checkins up and seq still continues above the old ones.
func TestUnusableQueueReset(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "tcp://127.0.0.1:1")
	lastSeq := fillQueue(t, cfg, 5)
	for _, s := range []string{"", "-wal", "-shm"} {
		os.Remove(cfg.QueuePath() + s)
	}
	os.Mkdir(cfg.QueuePath(), 0o700)
	runKiosk(t, cfg, Opts{})
	if s := status(t, cfg.Control.Socket); s.Storage != "fault" {
		t.Fatalf("queue.db a directory: storage %q", s.Storage)
	}
	var rr QueueResetReply
	if !call(t, cfg.Control.Socket, control.Request{Op: "queue-reset", Force: true}, &rr) {
		t.Fatal("queue-reset -force failed")
	}
	if r := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6"); r.Outcome != "saved" || r.Seq <= lastSeq {
		t.Fatalf("tap after reset: %+v; seq must continue above %d", r, lastSeq)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, faultFile)); err == nil {
		t.Error("the fault record outlived the reset")
	}
}

// A queue.db deleted next to an existing identity starts a fresh queue,
// says so, and seq continues.
func TestMissingQueueWarnsAndSeqContinues(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "tcp://127.0.0.1:1")
	_, stop := startKiosk(t, cfg, Opts{})
	first := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6")
	stop()
	for _, s := range []string{"", "-wal", "-shm"} {
		os.Remove(cfg.QueuePath() + s)
	}
	runKiosk(t, cfg, Opts{})
	s := status(t, cfg.Control.Socket)
	if s.Storage != "ok" || !strings.Contains(strings.Join(s.Warnings, " "), "missing") {
		t.Fatalf("status %+v: want a warning about the missing queue", s)
	}
	if r := tap(t, cfg.Control.Socket, "04B1B2C3D4E5F6"); r.Seq <= first.Seq {
		t.Fatalf("seq %d after %d: reused", r.Seq, first.Seq)
	}
}

// The configuration's floor for queue.min_free_bytes is the room the queue
// needs to drain a full disk.
func TestMinFreeFloorIsDrainRoom(t *testing.T) {
	if provisioning.MinFreeFloor != queue.DrainRoom {
		t.Fatalf("provisioning.MinFreeFloor %d, queue.DrainRoom %d", provisioning.MinFreeFloor, queue.DrainRoom)
	}
}

// The outcome counts central reads from the Status: every decision counted
// once (a debounced re-tap is not a decision), kept across a restart.
func TestOutcomeCountsInStatus(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "tcp://127.0.0.1:1")
	_, stop := startKiosk(t, cfg, Opts{})
	for chip, want := range map[string]string{"04A1B2C3D4E5F6": "saved", "08A1B2C3": "unreadable-card"} {
		if r := tap(t, cfg.Control.Socket, chip); r.Outcome != want {
			t.Fatalf("%s: %+v", chip, r)
		}
	}
	if r := tap(t, cfg.Control.Socket, "04A1B2C3D4E5F6"); r.Outcome != "already-saved" {
		t.Fatalf("again: %+v", r)
	}
	stop()
	k := runKiosk(t, cfg, Opts{})
	want := map[string]int64{"saved": 1, "already-saved": 1, "unreadable-card": 1}
	s := status(t, cfg.Control.Socket)
	p := k.statusPayload()
	for o, n := range want {
		if s.Outcomes[o] != n || p.Outcomes[o] != n {
			t.Errorf("%s: status %d, retained Status %d; want %d", o, s.Outcomes[o], p.Outcomes[o], n)
		}
	}
	if p.SeqHigh != s.Seq || p.SeqHigh < 1 {
		t.Errorf("seqHigh %d, status seq %d", p.SeqHigh, s.Seq)
	}
	if queue.SavedOutcome != "saved" {
		t.Errorf("the queue counts saved as %q", queue.SavedOutcome)
	}
}
