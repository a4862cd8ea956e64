package control

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

func serve(t *testing.T, h Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.sock")
	s, err := Listen(path, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	})
	return path
}

func echo(ctx context.Context, r Request) any {
	return map[string]any{"ok": true, "op": r.Op, "chip": r.ChipNumber}
}

func TestRoundTripAndMode(t *testing.T) {
	path := serve(t, echo)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	line, err := Call(context.Background(), path, Request{Op: "tap", ChipNumber: "04A1"})
	if err != nil || string(line) != `{"chip":"04A1","ok":true,"op":"tap"}` {
		t.Fatalf("%s %v", line, err)
	}
}

func TestBadRequestsGetErrorsAndConnectionLives(t *testing.T) {
	path := serve(t, echo)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	c.Write([]byte("not json\n"))
	line, _ := r.ReadString('\n')
	var rep ErrorReply
	if json.Unmarshal([]byte(line), &rep) != nil || rep.OK || !strings.Contains(rep.Error, "not a JSON object") {
		t.Fatalf("reply %q", line)
	}
	c.Write([]byte(`{"op":"status"}` + "\n"))
	if line, _ = r.ReadString('\n'); !strings.Contains(line, `"op":"status"`) {
		t.Fatalf("second request on the connection: %q", line)
	}
	c.Write([]byte(strings.Repeat("x", MaxLine+10) + "\n"))
	if line, _ = r.ReadString('\n'); !strings.Contains(line, "longer than") {
		t.Fatalf("long line: %q", line)
	}
}

func TestStaleSocketReplacedLiveOneRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	// A live listener: a second kioskd must not steal its socket.
	if _, err := Listen(path, echo); err == nil || !strings.Contains(err.Error(), "another kioskd") {
		t.Fatalf("live socket: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // now stale, as after a crash
	s, err := Listen(path, echo)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	s.Close()
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := Listen(path, echo); err == nil {
		t.Fatal("a regular file was replaced")
	}
}

// Every connection's goroutines end with the connection: a monitoring loop
// calling status for months must not grow kioskd.
func TestNoGoroutinePerClosedConnection(t *testing.T) {
	path := serve(t, echo)
	call := func() {
		if _, err := Call(context.Background(), path, Request{Op: "status"}); err != nil {
			t.Fatal(err)
		}
	}
	call() // warm up: the listener's own goroutines exist
	before := runtime.NumGoroutine()
	const n = 2000
	for range n {
		call()
	}
	// The server closes each connection after the client has gone; give the
	// last handlers a moment to return.
	var after int
	waitfor.Cond(t, "connection goroutines to end", func() bool {
		after = runtime.NumGoroutine()
		return after <= before+5
	})
	if after > before+5 {
		t.Fatalf("%d goroutines before, %d after %d connections", before, after, n)
	}
}
