package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a unixgram socket as systemd's notify socket would be.
func listen(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, c
}

// recv returns the next datagram, or "" when none is waiting.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestDisabledIsNoop(t *testing.T) {
	for _, n := range []*Notifier{nil, {}, New("", time.Second)} {
		if n.Enabled() || n.WatchdogTimeout() != 0 {
			t.Fatalf("%+v: enabled", n)
		}
		if err := n.Ready("x"); err != nil {
			t.Fatal(err)
		}
		if err := n.Watchdog(time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := n.Status("x"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSendReadyStatusStopping(t *testing.T) {
	path, c := listen(t)
	n := New(path, 0)
	if err := n.Ready("up\nand more"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1\nSTATUS=up" {
		t.Fatalf("ready: %q", got)
	}
	n.Status("pending 1")
	n.Status("pending 1")
	n.Status("pending 2")
	if got := recv(t, c); got != "STATUS=pending 1" {
		t.Fatalf("status: %q", got)
	}
	if got := recv(t, c); got != "STATUS=pending 2" {
		t.Fatalf("unchanged status sent again, or changed one not: %q", got)
	}
	n.Stopping()
	if got := recv(t, c); got != "STOPPING=1" {
		t.Fatalf("stopping: %q", got)
	}
}

func TestWatchdogPacing(t *testing.T) {
	path, c := listen(t)
	n := New(path, 4*time.Second) // a pet at most every second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {500 * time.Millisecond, false}, {time.Second, true}, {1900 * time.Millisecond, false},
		{2 * time.Second, true}, {10 * time.Second, true}, {9 * time.Second, true}} // clock stepped back: pet
	for _, s := range steps {
		if err := n.Watchdog(t0.Add(s.at)); err != nil {
			t.Fatal(err)
		}
		got := recv(t, c)
		if (got == "WATCHDOG=1") != s.want || (got != "" && got != "WATCHDOG=1") {
			t.Fatalf("at %s: got %q, want a pet: %v", s.at, got, s.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name string
		env  map[string]string
		wd   time.Duration
		err  bool
	}{
		{"none", map[string]string{}, 0, false},
		{"watchdog", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}, 30 * time.Second, false},
		{"ours", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, 2 * time.Second, false},
		{"another's", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 0, false},
		{"bad", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"}, 0, true},
		{"no socket", map[string]string{"WATCHDOG_USEC": "2000000"}, 0, false},
	}
	for _, tc := range cases {
		n, err := fromEnv(env(tc.env), 42)
		if (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrWatchdogEnv)) {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if n.WatchdogTimeout() != tc.wd {
			t.Errorf("%s: watchdog %s, want %s", tc.name, n.WatchdogTimeout(), tc.wd)
		}
	}
	n, _ := fromEnv(env(map[string]string{"NOTIFY_SOCKET": "@kiosk/notify"}), 1)
	if n.addr.Name != "\x00kiosk/notify" {
		t.Errorf("abstract socket: %q", n.addr.Name)
	}
}

func TestSendError(t *testing.T) {
	n := New(filepath.Join(t.TempDir(), "nobody-listens"), time.Second)
	if err := n.Send("READY=1"); err == nil {
		t.Fatal("send to a missing socket succeeded")
	}
}
