package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

// TestMain lets the tests run kioskd as a child process (this test binary,
// re-executed) so that a wedged tap loop can be killed from outside.
func TestMain(m *testing.M) {
	if os.Getenv("KIOSKD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// freePort returns a loopback port nobody listens on: kioskd's broker that
// never answers, so the forwarder keeps retrying.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// writeConfig writes a kioskd config that needs no hardware and no broker.
func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	conf := fmt.Sprintf(`[mqtt]
broker = "tcp://127.0.0.1:%d"
allow_insecure = true
`, freePort(t))
	return writeConfigMQTT(t, dir, conf)
}

// writeConfigMQTT is writeConfig with the given [mqtt] table ("" for none:
// the kiosk is then unprovisioned).
func writeConfigMQTT(t *testing.T, dir, mqtt string) string {
	t.Helper()
	conf := fmt.Sprintf(`device_id = "kiosk-notify-test"
state_dir = %q
[event]
id = "evt-notify"
[reader]
driver = "sim"
[display]
driver = "none"
[control]
socket = %q
`, filepath.Join(dir, "state"), filepath.Join(dir, "control.sock")) + mqtt
	path := filepath.Join(dir, "kioskd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// manager plays systemd's side of sd_notify: a unixgram socket whose
// datagrams arrive in order on msgs.
type manager struct {
	path string
	msgs chan string
}

func newManager(t *testing.T, dir string) *manager {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	m := &manager{path: path, msgs: make(chan string, 1024)}
	go func() {
		defer close(m.msgs)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(b[:n]), "\n") {
				m.msgs <- line
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return m
}

// await returns the assignments received until one satisfies ok, failing
// the test when none does within limit (a bound for a broken kioskd, not a
// speed assertion).
func (m *manager) await(t *testing.T, limit time.Duration, what string, ok func(string) bool) []string {
	t.Helper()
	var seen []string
	deadline := time.After(limit)
	for {
		select {
		case msg, open := <-m.msgs:
			if !open {
				t.Fatalf("notify socket closed while waiting for %s; got %q", what, seen)
			}
			seen = append(seen, msg)
			if ok(msg) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no %s within %s; got %q", what, limit, seen)
		}
	}
}

// lockedBuffer collects a child's stderr for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startKioskd runs kioskd as systemd would: NOTIFY_SOCKET, WATCHDOG_USEC.
func startKioskd(t *testing.T, m *manager, config string, env ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-config", config)
	cmd.Env = append(os.Environ(), "KIOSKD_TEST_MAIN=1", "NOTIFY_SOCKET="+m.path,
		"WATCHDOG_USEC=2000000", "WATCHDOG_PID=", "JOURNAL_STREAM=")
	cmd.Env = append(cmd.Env, env...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("kioskd stderr:\n%s", stderr.String())
		}
	})
	return cmd, &stderr
}

func isWatchdog(s string) bool { return s == "WATCHDOG=1" }

// TestNotifyReadyWatchdogStopping: READY=1 once up, WATCHDOG=1 again and
// again from the tap loop, STATUS= with event, pending and MQTT state, and
// STOPPING=1 with exit 0 on SIGTERM.
func TestNotifyReadyWatchdogStopping(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := newManager(t, dir)
	cmd, _ := startKioskd(t, m, writeConfig(t, dir))

	seen := m.await(t, 30*time.Second, "READY=1", func(s string) bool { return s == "READY=1" })
	for _, s := range seen {
		if isWatchdog(s) {
			// Allowed by systemd, but say so if it changes.
			t.Logf("WATCHDOG=1 before READY=1")
		}
	}
	status := m.await(t, 5*time.Second, "STATUS= after READY=1", func(s string) bool { return strings.HasPrefix(s, "STATUS=") })
	line := status[len(status)-1]
	for _, want := range []string{"event evt-notify", "0 pending", "mqtt disconnected", "reader "} {
		if !strings.Contains(line, want) {
			t.Errorf("status %q lacks %q", line, want)
		}
	}
	for i := 0; i < 3; i++ {
		m.await(t, 10*time.Second, fmt.Sprintf("WATCHDOG=1 #%d", i+1), isWatchdog)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.await(t, 20*time.Second, "STOPPING=1", func(s string) bool { return s == "STOPPING=1" })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kioskd after SIGTERM: %v, want exit 0", err)
	}
}

// TestWatchdogStopsWhenTapLoopWedged: with the tap loop blocked (test hook),
// no WATCHDOG=1 follows, although every other goroutine still runs, so
// systemd's WatchdogSec= kills and restarts kioskd.
func TestWatchdogStopsWhenTapLoopWedged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := newManager(t, dir)
	cmd, stderr := startKioskd(t, m, writeConfig(t, dir), wedgeEnv+"=after-2s", "GOTRACEBACK="+unitEnv(t, "GOTRACEBACK"))

	m.await(t, 30*time.Second, "READY=1", func(s string) bool { return s == "READY=1" })
	m.await(t, 10*time.Second, "WATCHDOG=1 before the wedge", isWatchdog)
	// The hook announces the wedge from the tap loop itself, after that
	// loop's last WATCHDOG=1: datagrams on one socket keep their order.
	m.await(t, 20*time.Second, "the wedge", func(s string) bool { return s == "STATUS=test hook: tap loop wedged" })

	// Two whole watchdog timeouts (WATCHDOG_USEC=2s) without a single pet.
	quiet := time.After(4 * time.Second)
	for done := false; !done; {
		select {
		case msg := <-m.msgs:
			if isWatchdog(msg) {
				t.Fatalf("WATCHDOG=1 after the tap loop wedged")
			}
		case <-quiet:
			done = true
		}
	}
	// kioskd is still alive (other goroutines run): only the watchdog can
	// end it, as systemd's would.
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("kioskd died on its own: %v", err)
	}
	if !strings.Contains(stderr.String(), "tap loop blocks for good") {
		t.Errorf("no log line for the test hook: %s", stderr.String())
	}

	// What systemd does then (WatchdogSignal=SIGABRT): kioskd must die by
	// the signal, with the hung loop's stack in the journal. An exit code
	// 2 would count as a configuration error (RestartPreventExitStatus=2)
	// and the kiosk would not be restarted.
	if err := cmd.Process.Signal(syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("kioskd after SIGABRT: %v", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Errorf("kioskd after SIGABRT: %v, want killed by SIGABRT so that systemd restarts it", err)
	}
	if out := stderr.String(); !strings.Contains(out, "device.(*Core).Run") {
		t.Errorf("no stack of the tap loop after SIGABRT:\n%s", out)
	}
}

// unitEnv returns the value of NAME in the unit's Environment= lines, so
// the tests run kioskd as the unit does.
func unitEnv(t *testing.T, name string) string {
	t.Helper()
	unit, err := os.ReadFile("../../systemd/kioskd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(unit), "\n") {
		if rest, ok := strings.CutPrefix(line, "Environment="); ok {
			for _, kv := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(kv, name+"="); ok {
					return v
				}
			}
		}
	}
	t.Fatalf("systemd/kioskd.service sets no %s", name)
	return ""
}

// TestStatusNotProvisioned: before provisioning, systemctl status shows the
// pairing code a technician needs.
func TestStatusNotProvisioned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := newManager(t, dir)
	startKioskd(t, m, writeConfigMQTT(t, dir, ""))
	m.await(t, 30*time.Second, "READY=1", func(s string) bool { return s == "READY=1" })
	st := m.await(t, 5*time.Second, "STATUS=", func(s string) bool { return strings.HasPrefix(s, "STATUS=") })
	if line := st[len(st)-1]; !strings.Contains(line, "not provisioned (pairing code ") {
		t.Errorf("status %q does not say not provisioned with the pairing code", line)
	}
}

// TestRunsWithoutSystemd: no NOTIFY_SOCKET, kioskd starts and stops as usual.
func TestRunsWithoutSystemd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-config", writeConfig(t, dir))
	cmd.Env = append(os.Environ(), "KIOSKD_TEST_MAIN=1", "NOTIFY_SOCKET=", "WATCHDOG_USEC=")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sock := filepath.Join(dir, "control.sock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no control socket; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kioskd: %v; stderr:\n%s", err, stderr.String())
	}
}

func TestParseWedge(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "after-3s": 3 * time.Second, "after-0s": time.Nanosecond} {
		if d, err := parseWedge(v); err != nil || d != want {
			t.Errorf("%q: %s, %v", v, d, err)
		}
	}
	for _, v := range []string{"3s", "after-", "after-x", "after--1s"} {
		if _, err := parseWedge(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestFlags: -version and -h answer without a config; bad input exits 2.
func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: kioskd") {
		t.Errorf("-h: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"-bogus"}, &stderr); code != 2 {
		t.Errorf("-bogus: exit %d", code)
	}
	stderr.Reset()
	missing := filepath.Join(t.TempDir(), "none.toml")
	if code := run([]string{"-config", missing}, &stderr); code != 2 || !strings.Contains(stderr.String(), missing) {
		t.Errorf("missing config: exit %d, %q", code, stderr.String())
	}
	t.Setenv(wedgeEnv, "soon")
	stderr.Reset()
	if code := run([]string{"-config", writeConfig(t, t.TempDir())}, &stderr); code != 2 || !strings.Contains(stderr.String(), wedgeEnv) {
		t.Errorf("bad %s: exit %d, %q", wedgeEnv, code, stderr.String())
	}
}

// TestSampleConfig: the packaged /etc/kioskd/kioskd.toml stops kioskd with
// "device_id: missing" until the technician sets it, is valid then, and
// matches the wiring in docs/install.md.
func TestSampleConfig(t *testing.T) {
	sample, err := os.ReadFile("../../systemd/kioskd.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = provisioning.Parse("kioskd.toml", sample)
	var ke *provisioning.KeyError
	if !errors.As(err, &ke) || ke.Key != "device_id" {
		t.Fatalf("sample without device_id: %v, want a device_id error", err)
	}
	cfg, err := provisioning.Parse("kioskd.toml", append([]byte("device_id = \"kiosk-bib-geel-01\"\n"), sample...))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"reader.driver": "pn532-spi", "reader.spi": "/dev/spidev0.0", "reader.irq": "GPIO25",
		"reader.reset": "GPIO24", "display.driver": "ssd1306", "display.i2c_bus": "/dev/i2c-1",
		"display.buzzer": "GPIO18", "display.led": "GPIO23", "state_dir": "/var/lib/kioskd",
		"control.socket": "/run/kioskd/control.sock",
	}
	got := map[string]string{
		"reader.driver": cfg.Reader.Driver, "reader.spi": cfg.Reader.SPIDev, "reader.irq": cfg.Reader.IRQ,
		"reader.reset": cfg.Reader.Reset, "display.driver": cfg.Display.Driver, "display.i2c_bus": cfg.Display.I2CBus,
		"display.buzzer": cfg.Display.Buzzer, "display.led": cfg.Display.LED, "state_dir": cfg.StateDir,
		"control.socket": cfg.Control.Socket,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	doc, err := os.ReadFile("../../docs/install.md")
	if errors.Is(err, os.ErrNotExist) {
		t.Fatal("docs/install.md missing")
	}
	for _, pin := range []string{"GPIO25", "GPIO24", "GPIO18", "GPIO23"} {
		if !bytes.Contains(doc, []byte(pin)) {
			t.Errorf("docs/install.md does not mention %s, which the sample config uses", pin)
		}
	}
}
