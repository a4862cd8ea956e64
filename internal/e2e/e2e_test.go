// Package e2e runs the real programs — kioskd, kiosk-ingest, kioskctl — as
// processes against a broker started per test (Mosquitto, or the embedded
// broker where none is installed: see internal/testbroker), and checks what a
// passholder and central see: every saved tap is booked exactly once, through
// broker outages, daemon kills and garbage on the wire.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk/control"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "kiosk-e2e-bin")
	if err != nil {
		panic(err)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/kioskd", "../../cmd/kiosk-ingest", "../../cmd/kioskctl")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a program under test.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t *testing.T, name, logPath string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(syscall.SIGTERM) })
	return p
}

// stop sends sig and waits for the process to end.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("%s did not stop on %v", p.name, sig)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// world is one broker, one ingest and a kiosk's files.
type world struct {
	t      *testing.T
	dir    string
	broker *testbroker.Broker
	ingest *proc
	ledger string
	sock   string
	config string
	kioskd *proc
	device string
}

func newWorld(t *testing.T) *world { t.Helper(); return newWorldReader(t, "sim") }

// newWorldReader is newWorld with another reader driver.
func newWorldReader(t *testing.T, driver string) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, broker: testbroker.Start(t), ledger: filepath.Join(dir, "ledger.db"),
		sock: filepath.Join(dir, "control.sock"), config: filepath.Join(dir, "kioskd.toml"), device: "kiosk-e2e-01"}
	t.Logf("broker: %s (%s)", w.broker.URL(), w.broker.Kind)
	conf := fmt.Sprintf(`device_id = %q
state_dir = %q

[event]
id = "evt-e2e"
title = "E2E leesclub"
counter_id = "balie-e2e"
points = 1
period = "DAY"
volume = 1

[tap]
debounce = "50ms"
hold = "1s"

[reader]
driver = %q

[display]
driver = "none"

[control]
socket = %q

[mqtt]
broker = %q
allow_insecure = true
retry_after = "3s"

[log]
level = "debug"
`, w.device, filepath.Join(dir, "state"), driver, w.sock, w.broker.URL())
	if err := os.WriteFile(w.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) startIngest() {
	w.t.Helper()
	w.ingest = start(w.t, "kiosk-ingest", filepath.Join(w.dir, "ingest.log"),
		"-broker", w.broker.URL(), "-db", w.ledger, "-enroll-unknown")
}

func (w *world) startKiosk() {
	w.t.Helper()
	w.kioskd = start(w.t, "kioskd", filepath.Join(w.dir, "kioskd.log"), "-config", w.config)
	w.waitFor("kioskd ready", 15*time.Second, func() bool {
		if w.kioskd.exited() {
			w.t.Fatalf("kioskd exited:\n%s", w.kioskd.logText())
		}
		_, err := w.status()
		return err == nil
	})
}

// waitFor waits for cond, and on a timeout fails with the programs' logs.
// Processes under test take their time; nothing here asserts how long.
func (w *world) waitFor(what string, timeout time.Duration, cond func() bool) {
	w.t.Helper()
	if !waitfor.Within(timeout, cond) {
		w.t.Fatalf("timed out waiting for %s\nkioskd log tail:\n%s\ningest log tail:\n%s", what, tail(w.kioskd), tail(w.ingest))
	}
}

func tail(p *proc) string {
	if p == nil {
		return "(not started)"
	}
	s := p.logText()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

type tapReply struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Outcome string `json:"outcome"`
	Screen  string `json:"screen"`
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
}

func (w *world) tap(chip string) (tapReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := control.Call(ctx, w.sock, control.Request{Op: "tap", ChipNumber: chip})
	if err != nil {
		return tapReply{}, err
	}
	var r tapReply
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("reply %q: %w", line, err)
	}
	if !r.OK {
		return r, fmt.Errorf("tap refused: %s", r.Error)
	}
	return r, nil
}

func (w *world) mustTap(chip, want string) tapReply {
	w.t.Helper()
	r, err := w.tap(chip)
	if err != nil {
		w.t.Fatalf("tap %s: %v", chip, err)
	}
	if r.Outcome != want {
		w.t.Fatalf("tap %s: outcome %q, want %q", chip, r.Outcome, want)
	}
	return r
}

type statusReply struct {
	OK          bool   `json:"ok"`
	Pending     int    `json:"pending"`
	MQTT        string `json:"mqtt"`
	Reader      string `json:"reader"`
	EventID     string `json:"eventId"`
	Seq         int64  `json:"seq"`
	BadPayloads int64  `json:"badPayloads"`
}

func (w *world) status() (statusReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	line, err := control.Call(ctx, w.sock, control.Request{Op: "status"})
	if err != nil {
		return statusReply{}, err
	}
	var s statusReply
	err = json.Unmarshal(line, &s)
	return s, err
}

func (w *world) pending() int {
	s, err := w.status()
	if err != nil {
		return -1
	}
	return s.Pending
}

type ledgerRow struct {
	ID         string `json:"id"`
	DeviceID   string `json:"deviceId"`
	Seq        int64  `json:"seq"`
	ChipNumber string `json:"chipNumber"`
	EventID    string `json:"eventId"`
	Status     string `json:"status"`
	Points     int    `json:"points"`
}

func (w *world) ledgerRows() []ledgerRow {
	w.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "kiosk-ingest"), "ledger", "-db", w.ledger).Output()
	if err != nil {
		w.t.Fatalf("kiosk-ingest ledger: %v", err)
	}
	var rows []ledgerRow
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r ledgerRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			w.t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		rows = append(rows, r)
	}
	return rows
}

// checkBookedOnce asserts each id in saved appears exactly once in the
// ledger, that no id or (device, seq) appears twice, and returns the rows.
func (w *world) checkBookedOnce(saved map[string]string) []ledgerRow {
	w.t.Helper()
	rows := w.ledgerRows()
	ids := map[string]int{}
	seqs := map[int64]int{}
	for _, r := range rows {
		ids[r.ID]++
		seqs[r.Seq]++
	}
	for id, n := range ids {
		if n != 1 {
			w.t.Errorf("id %s booked %d times", id, n)
		}
	}
	for seq, n := range seqs {
		if n != 1 {
			w.t.Errorf("seq %d booked %d times", seq, n)
		}
	}
	for id, chip := range saved {
		if ids[id] != 1 {
			w.t.Errorf("saved tap %s (chip %s) is not in the ledger", id, chip)
		}
	}
	return rows
}

func chip(i int) string { return fmt.Sprintf("04E2E0%08X", i) }

func TestTapsReachLedgerExactlyOnce(t *testing.T) {
	w := newWorld(t)
	w.startIngest()
	w.startKiosk()
	saved := map[string]string{}
	for i := 0; i < 10; i++ {
		r := w.mustTap(chip(i), "saved")
		if r.Seq != int64(i+1) {
			t.Fatalf("tap %d: seq %d", i, r.Seq)
		}
		saved[r.ID] = chip(i)
	}
	// Not the last card tapped, so not debounced: judged again, and the
	// local history says it saved today.
	w.mustTap(chip(0), "already-saved")
	w.mustTap("08A1B2C3", "unreadable-card")
	w.waitFor("queue drained", 20*time.Second, func() bool { return w.pending() == 0 })
	rows := w.checkBookedOnce(saved)
	if len(rows) != 10 {
		t.Fatalf("ledger has %d rows, want 10", len(rows))
	}
	for _, r := range rows {
		if r.Status != "saved" || r.DeviceID != w.device || r.EventID != "evt-e2e" || r.Points != 1 {
			t.Errorf("ledger row %+v", r)
		}
	}
	if strings.Contains(w.kioskd.logText(), chip(3)) {
		t.Error("kioskd logged a whole card number")
	}
}

func TestBrokerOutageQueuesThenDrains(t *testing.T) {
	w := newWorld(t)
	w.startIngest()
	w.startKiosk()
	saved := map[string]string{}
	r := w.mustTap(chip(100), "saved")
	saved[r.ID] = chip(100)
	w.waitFor("first tap drained", 20*time.Second, func() bool { return w.pending() == 0 })

	w.broker.Stop()
	w.waitFor("kiosk sees the broker gone", 20*time.Second, func() bool {
		s, err := w.status()
		return err == nil && s.MQTT == "disconnected"
	})
	for i := 0; i < 25; i++ {
		r := w.mustTap(chip(200+i), "saved")
		saved[r.ID] = chip(200 + i)
	}
	if p := w.pending(); p != 25 {
		t.Fatalf("pending %d during outage, want 25", p)
	}
	w.broker.Start()
	w.waitFor("queue drained after the outage", 60*time.Second, func() bool { return w.pending() == 0 })
	if rows := w.checkBookedOnce(saved); len(rows) != 26 {
		t.Fatalf("ledger has %d rows, want 26", len(rows))
	}
}

func TestKillDuringTapsLosesNothing(t *testing.T) {
	w := newWorld(t)
	w.startIngest()
	w.startKiosk()
	saved := map[string]string{}
	// A stream of taps; kioskd dies by SIGKILL in the middle of it.
	stop := make(chan struct{})
	got := make(chan tapReply, 1000)
	go func() {
		defer close(got)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := w.tap(chip(1000 + i))
			if err != nil {
				return // kioskd gone: this tap got no reply, so no promise was made
			}
			got <- r
		}
	}()
	w.waitFor("some taps", 20*time.Second, func() bool { return len(got) >= 150 })
	w.kioskd.stop(syscall.SIGKILL)
	close(stop)
	var maxSeq int64
	for r := range got {
		if r.Outcome != "saved" {
			t.Fatalf("tap outcome %q", r.Outcome)
		}
		saved[r.ID] = "x"
		maxSeq = max(maxSeq, r.Seq)
	}
	t.Logf("%d taps answered saved before SIGKILL (max seq %d)", len(saved), maxSeq)
	w.startKiosk()
	r := w.mustTap(chip(5000), "saved")
	if r.Seq <= maxSeq {
		t.Fatalf("seq %d reused after restart (had %d)", r.Seq, maxSeq)
	}
	saved[r.ID] = chip(5000)
	w.waitFor("queue drained after restart", 30*time.Second, func() bool { return w.pending() == 0 })
	w.checkBookedOnce(saved)
}

func TestGarbageResultsIgnoredAndCounted(t *testing.T) {
	w := newWorld(t)
	w.startKiosk()
	w.waitFor("kiosk connected", 20*time.Second, func() bool {
		s, err := w.status()
		return err == nil && s.MQTT == "connected"
	})
	r := w.mustTap(chip(7), "saved")
	opts := paho.NewClientOptions().AddBroker(w.broker.URL()).SetClientID("e2e-evil")
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	topic := "kiosk/v1/" + w.device + "/result"
	garbage := [][]byte{
		[]byte("not json at all"),
		[]byte(`{"v":1,"id":"` + r.ID + `","status":"saved","pad":"` + strings.Repeat("x", 5000) + `"}`),
		[]byte(`{"v":2,"id":"` + r.ID + `","status":"saved"}`),
		[]byte(`{"v":1,"status":"saved"}`),
		[]byte(`{"v":1,"id":"` + r.ID + `","status":"booked"}`),
		[]byte{0xff, 0xfe, 0x00, 0x01},
		[]byte(`[]`),
	}
	for _, g := range garbage {
		if tok := c.Publish(topic, 1, false, g); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	w.waitFor("garbage counted", 20*time.Second, func() bool {
		s, err := w.status()
		return err == nil && s.BadPayloads >= int64(len(garbage))
	})
	// Nothing was deleted on garbage: the tap is still pending, the daemon alive.
	if p := w.pending(); p != 1 {
		t.Fatalf("pending %d, want 1 (garbage must not count as a Result)", p)
	}
	w.mustTap(chip(8), "saved")
	if w.kioskd.exited() {
		t.Fatal("kioskd died")
	}
	// A genuine Result from a late central still settles it.
	w.startIngest()
	w.waitFor("queue drained", 30*time.Second, func() bool { return w.pending() == 0 })
}

// TestEmulatedPN532TapsReachLedger: kioskd with the real PN532 driver over
// its emulator; control-socket taps put cards in the emulated field, and
// they reach the ledger.
func TestEmulatedPN532TapsReachLedger(t *testing.T) {
	w := newWorldReader(t, "pn532-emulated")
	w.startIngest()
	w.startKiosk()
	saved := map[string]string{}
	for i := 0; i < 5; i++ {
		r := w.mustTap(chip(300+i), "saved")
		saved[r.ID] = chip(300 + i)
	}
	w.mustTap("08A1B2C3", "unreadable-card")
	w.waitFor("queue drained", 20*time.Second, func() bool { return w.pending() == 0 })
	if rows := w.checkBookedOnce(saved); len(rows) != 5 {
		t.Fatalf("ledger has %d rows, want 5", len(rows))
	}
	if s, err := w.status(); err != nil || s.Reader != "ok" {
		t.Fatalf("status %+v %v", s, err)
	}
}
