package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

func TestFleetBadFlagsExit2WithOneLine(t *testing.T) {
	db := filepath.Join(t.TempDir(), "l.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet"}, "-db is required"},
		{[]string{"fleet", "-db", missing}, "no such file"},
		{[]string{"fleet", "-db", db, "-bogus"}, "-bogus"},
		{[]string{"fleet", "-db", db, "-offline-after", "-1s"}, "-offline-after"},
		{[]string{"fleet", "-db", db, "-pending-after", "soon"}, "-pending-after"},
		{[]string{"fleet", "-db", db, "-cert-days", "-3"}, "-cert-days"},
		{[]string{"fleet", "-db", db, "-configs-rejected", "-1"}, "-configs-rejected"},
		{[]string{"fleet", "-db", db, "-skip", "version,bogus"}, "-skip"},
		{[]string{"fleet", "-db", db, "-at", "yesterday"}, "-at"},
		{[]string{"fleet", "-db", db, "extra"}, "unexpected argument"},
	} {
		expectUsageError(t, tc.args, tc.want)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"fleet", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-offline-after") {
		t.Errorf("fleet -h: %d %q", code, out.String())
	}
}

// fleetJSON runs `fleet -json` with args and returns its lines by device.
func fleetJSON(t *testing.T, db string, args ...string) map[string]fleetLine {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"fleet", "-db", db, "-json"}, args...), &out, &errb); code != 0 {
		t.Fatalf("fleet exit %d: %s", code, errb.String())
	}
	lines := map[string]fleetLine{}
	for _, s := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if s == "" {
			continue
		}
		var l fleetLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("fleet -json line %q: %v", s, err)
		}
		lines[l.DeviceID] = l
	}
	return lines
}

func alertNames(as []fleet.Alert) string {
	var n []string
	for _, a := range as {
		n = append(n, a.Name)
	}
	return strings.Join(n, ",")
}

// TestFleetCommand prints a registry filled directly: one line per kiosk
// with state, since, pending, version, event and alerts, judged at -at and
// with the threshold flags; -json the same as objects with the raw Status.
func TestFleetCommand(t *testing.T) { testFleetCommand(t, filepath.Join(t.TempDir(), "ledger.db")) }

// TestFleetCommandPostgres is the same on a postgres:// ledger.
func TestFleetCommandPostgres(t *testing.T) { testFleetCommand(t, pgDSN(t)) }

func testFleetCommand(t *testing.T, db string) {
	l, err := ingest.Open(db, ingest.DefaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := fleet.Open(context.Background(), l.DB(), l.Dialect(), fleet.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	msg := func(s protocol.Status, recv time.Time) fleet.Message {
		s.V = 1
		return fleet.Message{Status: s, Raw: s.Encode(), ReceivedAt: recv}
	}
	willOf := func(d string, recv time.Time) fleet.Message {
		s, _ := protocol.DecodeStatus(protocol.Will(d))
		return fleet.Message{Status: s, Raw: protocol.Will(d), ReceivedAt: recv}
	}
	ok := protocol.Status{Online: true, Version: "1.2.0", EventID: "evt-1", ClockSynced: true, Reader: "ok", Display: "ok",
		At: protocol.FormatTime(t0)}
	a, b, c := ok, ok, ok
	a.DeviceID, b.DeviceID, c.DeviceID = "kiosk-a", "kiosk-b", "kiosk-c"
	b.Version, b.Pending, b.OldestPendingS, b.Reader = "1.1.0", 4, 30, "fault"
	if _, err := reg.Apply(context.Background(), []fleet.Message{msg(a, t0), msg(b, t0), msg(c, t0), willOf("kiosk-c", t0.Add(time.Minute))},
		map[string]time.Time{"kiosk-a": t0.Add(2 * time.Minute), "kiosk-d": t0.Add(3 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	at := t0.Add(20 * time.Minute).Format(time.RFC3339)
	lines := fleetJSON(t, db, "-at", at)
	if len(lines) != 4 {
		t.Fatalf("lines %+v", lines)
	}
	if x := lines["kiosk-a"]; x.State != "online" || x.Since != protocol.FormatTime(t0) || x.LastCheckin != protocol.FormatTime(t0.Add(2*time.Minute)) ||
		x.Version != "1.2.0" || x.EventID != "evt-1" || len(x.Alerts) != 0 || x.Availability24h == nil || *x.Availability24h != 1 || len(x.Status) == 0 {
		t.Errorf("kiosk-a %+v", x)
	}
	// kiosk-b said 4 pending 20 min ago and none of its checkins came.
	if x := lines["kiosk-b"]; x.Pending != 4 || alertNames(x.Alerts) != "undelivered,reader,version" {
		t.Errorf("kiosk-b %+v", x)
	}
	if x := lines["kiosk-c"]; x.State != "offline" || x.Since != protocol.FormatTime(t0.Add(time.Minute)) || alertNames(x.Alerts) != "offline" {
		t.Errorf("kiosk-c %+v", x)
	}
	if x := lines["kiosk-d"]; x.State != "unknown" || x.LastCheckin == "" || len(x.Alerts) != 0 || x.Availability24h != nil {
		t.Errorf("kiosk-d %+v", x)
	}
	// Thresholds: pending after 10 s catches kiosk-b; offline after 1 h
	// spares kiosk-c and undelivered after 1 h kiosk-b; -skip drops the
	// version alert.
	lines = fleetJSON(t, db, "-at", at, "-pending-after", "10s", "-offline-after", "1h", "-undelivered-after", "1h", "-skip", "version")
	if x := lines["kiosk-b"]; alertNames(x.Alerts) != "pending,reader" {
		t.Errorf("kiosk-b with thresholds %+v", x)
	}
	if x := lines["kiosk-c"]; len(x.Alerts) != 0 {
		t.Errorf("kiosk-c with thresholds %+v", x)
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"fleet", "-db", db, "-at", at}, &out, &errb); code != 0 {
		t.Fatalf("fleet exit %d: %s", code, errb.String())
	}
	text := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(text) != 4 || !strings.HasPrefix(text[0], "kiosk-a  online since 2026-12-01T10:00:00.000Z") || !strings.Contains(text[0], "alerts: none") ||
		!strings.Contains(text[1], "pending 4") || !strings.Contains(text[1], "reader (reader fault)") ||
		!strings.HasPrefix(text[2], "kiosk-c  offline since 2026-12-01T10:01:00.000Z") || !strings.Contains(text[2], "offline (offline for 19m0s)") {
		t.Errorf("text:\n%s", out.String())
	}
}

// helperKioskEnv, set in a child's environment, makes
// TestFleetHelperKiosk run a kiosk (simulated reader, no display) on the
// broker it names until the process is killed.
const helperKioskEnv = "KIOSK_FLEET_TEST_KIOSK"

// TestFleetHelperKiosk is not a test: re-executed with helperKioskEnv it
// is the kiosk of TestFleetEndToEnd, in a process of its own so that it can
// be killed and its TCP connection dropped without a DISCONNECT.
func TestFleetHelperKiosk(t *testing.T) {
	spec := os.Getenv(helperKioskEnv)
	if spec == "" {
		return // the kiosk of TestFleetEndToEnd; runs only as its child process
	}
	broker, dir, _ := strings.Cut(spec, " ")
	c := provisioning.Default()
	c.DeviceID, c.StateDir, c.Path = "kiosk-fleet-e2e", filepath.Join(dir, "state"), "test"
	c.Event.ID, c.Event.Title = "evt-fleet", "Leesclub"
	c.Control.Socket = filepath.Join(dir, "control.sock")
	c.MQTT.Broker, c.MQTT.AllowInsecure = broker, true
	c.Display.SpaarcodeEvery = -1
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k, err := kiosk.New(c, kiosk.Opts{Version: "7.7.7"})
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(k.Run(context.Background())) // runs until killed
}

// TestFleetEndToEnd: a real broker, the ingest serving with the registry
// (the default), a real kiosk in a child process coming online; the child
// is killed (SIGKILL: no DISCONNECT, so the broker publishes its last will)
// and `fleet` shows it offline, with the offline alert once the (small)
// threshold has passed.
func TestFleetEndToEnd(t *testing.T) {
	b := testbroker.Start(t)
	db := filepath.Join(t.TempDir(), "ledger.db")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-broker", b.URL(), "-db", db, "-client-id", "ingest-fleet-e2e"}, &bytes.Buffer{}, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, stderr.String())
		}
	}()
	waitfor.Cond(t, "status subscription", func() bool { return strings.Contains(stderr.String(), "/+/status") })

	cmd := exec.Command(os.Args[0], "-test.run=^TestFleetHelperKiosk$")
	cmd.Env = append(os.Environ(), helperKioskEnv+"="+b.URL()+" "+t.TempDir())
	var kout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &kout, &kout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("kiosk output:\n%s\ningest log:\n%s", kout.String(), stderr.String())
		}
	}()
	const id = "kiosk-fleet-e2e"
	var line fleetLine
	waitfor.Cond(t, "the kiosk online in fleet", func() bool {
		line = fleetJSON(t, db)[id]
		return line.State == "online"
	})
	if line.Version != "7.7.7" || line.EventID != "evt-fleet" || len(line.Alerts) != 0 && alertNames(line.Alerts) != "clock-unsynced" {
		t.Errorf("online: %+v", line)
	}
	onlineSince := line.Since

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	waitfor.Cond(t, "the kiosk offline with the offline alert", func() bool {
		line = fleetJSON(t, db, "-offline-after", "50ms")[id]
		return line.State == "offline" && strings.Contains(alertNames(line.Alerts), "offline")
	})
	if line.Since <= onlineSince || line.Version != "7.7.7" || line.Availability24h == nil {
		t.Errorf("offline: %+v (since must follow %s; the last Status stays)", line, onlineSince)
	}
	// It went offline by the broker's last will, not by a Status.
	l, err := ingest.Open(db, ingest.DefaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg, err := fleet.Open(context.Background(), l.DB(), l.Dialect(), fleet.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := reg.Transitions(context.Background(), id)
	if err != nil || len(ts) != 2 || !ts[0].Online || ts[1].Online || ts[1].Cause != fleet.CauseWill {
		t.Errorf("transitions %+v %v: want online, then offline by the will", ts, err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"fleet", "-db", db, "-offline-after", "50ms"}, &out, &errb); code != 0 ||
		!strings.HasPrefix(out.String(), id+"  offline since ") || !strings.Contains(out.String(), "alerts: offline (offline for") {
		t.Errorf("fleet: exit %d, %q %q", code, out.String(), errb.String())
	}
}

// An ingest on a broker that never delivers (NATS's or RabbitMQ's MQTT with
// -share) must not look healthy: kiosks report pending checkins and none
// arrive, and the journal says so.
func TestWarnsWhenPendingCheckinsNeverArrive(t *testing.T) {
	l, err := ingest.Open(filepath.Join(t.TempDir(), "ledger.db"), ingest.DefaultOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg, err := fleet.Open(context.Background(), l.DB(), l.Dialect(), fleet.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := protocol.Status{V: 1, Online: true, DeviceID: "kiosk-starved", Version: "1.2.0", ClockSynced: true, Reader: "ok",
		Display: "ok", Pending: 7, At: protocol.FormatTime(t0)}
	if _, err := reg.Apply(context.Background(), []fleet.Message{{Status: s, Raw: s.Encode(), ReceivedAt: t0}}, nil); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); watchUndelivered(ctx, reg, clk, log) }()
	defer func() { cancel(); <-done }()
	waitfor.Cond(t, "the undelivered warning", func() bool {
		clk.Advance(undeliveredEvery)
		return strings.Contains(buf.String(), "none of theirs arrive") && strings.Contains(buf.String(), "kiosk-starved")
	})
}

// expectUsageError runs kiosk-ingest with args and wants exit 2 and one
// stderr line, "kiosk-ingest: …", that says want.
func expectUsageError(t *testing.T, args []string, want string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], want) || !strings.HasPrefix(lines[0], "kiosk-ingest: ") {
		t.Errorf("%q: exit %d, stderr %q (want %q)", args, code, errb.String(), want)
	}
}
