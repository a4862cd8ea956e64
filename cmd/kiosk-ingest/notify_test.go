package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// TestMain lets the tests run kiosk-ingest as a child process (this test
// binary, re-executed) as systemd would, so that a wedged batch loop can
// be killed from outside.
func TestMain(m *testing.M) {
	if os.Getenv("KIOSK_INGEST_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// notifySocket plays systemd's side of sd_notify: a unixgram socket whose
// assignments arrive in order on msgs.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	m := &notifySocket{path: path, msgs: make(chan string, 1024)}
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
// the test when none does within waitfor.Timeout (a bound for a broken
// ingest, not a speed assertion).
func (m *notifySocket) await(t *testing.T, what string, ok func(string) bool) []string {
	t.Helper()
	var seen []string
	deadline := time.After(waitfor.Timeout)
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
			t.Fatalf("no %s within %s; got %q", what, waitfor.Timeout, seen)
		}
	}
}

func is(want string) func(string) bool { return func(s string) bool { return s == want } }

// startIngest runs kiosk-ingest on a real broker and a SQLite ledger as the
// unit does: NOTIFY_SOCKET, WATCHDOG_USEC, stderr a file that
// JOURNAL_STREAM names (as journald's stream socket would be).
func startIngest(t *testing.T, m *notifySocket, env ...string) (*exec.Cmd, func() string) {
	t.Helper()
	b := testbroker.Start(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "stderr")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fi, err := logf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	cmd := exec.Command(os.Args[0], "-broker", b.URL(), "-db", filepath.Join(dir, "ledger.db"),
		"-client-id", "ingest-notify-test", "-enroll-unknown")
	cmd.Env = append(os.Environ(), "KIOSK_INGEST_TEST_MAIN=1", "NOTIFY_SOCKET="+m.path,
		"WATCHDOG_USEC=2000000", "WATCHDOG_PID=", fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderr := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("kiosk-ingest stderr:\n%s", stderr())
		}
	})
	return cmd, stderr
}

// TestNotifyReadyWatchdogStopping: READY=1 once connected and subscribed,
// WATCHDOG=1 again and again from the batch loop while idle, STATUS=
// lines, journal priorities without times on stderr, and STOPPING=1 with
// exit 0 on SIGTERM.
func TestNotifyReadyWatchdogStopping(t *testing.T) {
	t.Parallel()
	m := newNotifySocket(t)
	cmd, stderr := startIngest(t, m)

	seen := m.await(t, "READY=1", is("READY=1"))
	connecting := false
	for _, s := range seen {
		connecting = connecting || strings.HasPrefix(s, "STATUS=connecting to tcp://127.0.0.1:")
	}
	if !connecting {
		t.Errorf("no STATUS=connecting to … before READY=1: %q", seen)
	}
	st := m.await(t, "STATUS= with READY=1", func(s string) bool { return strings.HasPrefix(s, "STATUS=") })
	if line := st[len(st)-1]; !strings.Contains(line, "subscribed at tcp://127.0.0.1:") || !strings.Contains(line, "0 received") {
		t.Errorf("status %q", line)
	}
	for i := 0; i < 3; i++ {
		m.await(t, fmt.Sprintf("WATCHDOG=1 #%d", i+1), is("WATCHDOG=1"))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.await(t, "STOPPING=1", is("STOPPING=1"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kiosk-ingest after SIGTERM: %v, want exit 0", err)
	}

	// stderr was the journal: priorities, no time (journald adds it).
	out := stderr()
	if !strings.Contains(out, "<6>level=INFO msg=subscribed") {
		t.Errorf("no journal priority on the subscribed line:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "<") || strings.Contains(line, "time=") {
			t.Errorf("not a journal line: %q", line)
		}
	}
}

// TestWatchdogStopsWhenBatchLoopWedged: with the batch loop blocked (test
// hook), no WATCHDOG=1 follows, although paho's goroutines still run, so
// systemd's WatchdogSec= kills it; it dies by the signal (the unit's
// GOTRACEBACK=crash), not with exit 2, which the unit does not restart.
func TestWatchdogStopsWhenBatchLoopWedged(t *testing.T) {
	t.Parallel()
	m := newNotifySocket(t)
	cmd, stderr := startIngest(t, m, wedgeEnv+"=2s", "GOTRACEBACK="+unitEnv(t, "GOTRACEBACK"))

	m.await(t, "READY=1", is("READY=1"))
	m.await(t, "WATCHDOG=1 before the wedge", is("WATCHDOG=1"))
	// Announced from the batch loop itself, after its last WATCHDOG=1:
	// datagrams on one socket keep their order.
	m.await(t, "the wedge", is("STATUS=test hook: batch loop wedged"))
	// Two whole watchdog timeouts (WATCHDOG_USEC=2s) without a single pet.
	quiet := time.After(4 * time.Second)
	for done := false; !done; {
		select {
		case msg := <-m.msgs:
			if msg == "WATCHDOG=1" {
				t.Fatal("WATCHDOG=1 after the batch loop wedged")
			}
		case <-quiet:
			done = true
		}
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("kiosk-ingest died on its own: %v", err)
	}
	// What systemd does then (WatchdogSignal=SIGABRT).
	if err := cmd.Process.Signal(syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("kiosk-ingest after SIGABRT: %v", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Errorf("kiosk-ingest after SIGABRT: %v, want killed by SIGABRT so that systemd restarts it", err)
	}
	if out := stderr(); !strings.Contains(out, "ingest.(*Service).writer") {
		t.Errorf("no stack of the batch loop after SIGABRT:\n%s", out)
	}
}

// unitEnv returns the value of NAME in the unit's Environment= lines.
func unitEnv(t *testing.T, name string) string {
	t.Helper()
	unit, err := os.ReadFile("../../systemd/kiosk-ingest.service")
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
	t.Fatalf("systemd/kiosk-ingest.service sets no %s", name)
	return ""
}

// TestBadWedgeHookExits2: the test hook's value is checked like a flag.
func TestBadWedgeHookExits2(t *testing.T) {
	t.Setenv(wedgeEnv, "soon")
	var out, errb strings.Builder
	args := []string{"-broker", "tcp://127.0.0.1:1", "-db", filepath.Join(t.TempDir(), "l.db")}
	if code := run(context.Background(), args, &out, &errb); code != 2 || !strings.Contains(errb.String(), wedgeEnv) {
		t.Errorf("exit %d, %q", code, errb.String())
	}
}
