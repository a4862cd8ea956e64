package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A state error at start is one line and exit 3 (the unit restarts it); a
// configuration error is one line and exit 2 (it does not). Neither is a
// panic with a goroutine dump.
func TestStartErrorsExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "state-is-a-file")
	os.WriteFile(notDir, []byte("x"), 0o600)
	stateErr := writeConfig(t, dir)
	b, _ := os.ReadFile(stateErr)
	os.WriteFile(stateErr, []byte(strings.Replace(string(b), "state_dir = ", "state_dir = "+quote(notDir)+"\n#", 1)), 0o600)
	badKey := filepath.Join(dir, "bad.toml")
	os.WriteFile(badKey, []byte(strings.Replace(string(b), "[reader]", "[tap]\ndebounce = 3\n[reader]", 1)), 0o600)
	for _, tc := range []struct {
		config string
		code   int
		names  string
	}{
		{stateErr, exitState, "state_dir " + notDir},
		{badKey, exitConfig, "tap.debounce"},
	} {
		cmd := exec.Command(os.Args[0], "-config", tc.config)
		cmd.Env = append(os.Environ(), "KIOSKD_TEST_MAIN=1", "NOTIFY_SOCKET=", "RUNTIME_DIRECTORY=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		out := strings.TrimSpace(stderr.String())
		if code != tc.code || strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.names) || strings.Contains(out, "panic") {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and one line naming %q", filepath.Base(tc.config), code, out, tc.code, tc.names)
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

// Consecutive failed starts pause longer each time, capped; a start that
// gets to ready forgets them.
func TestStartFailuresGrow(t *testing.T) {
	f := startFailures{dir: t.TempDir()}
	var got []time.Duration
	for range 8 {
		got = append(got, f.failed())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
	f.ok()
	if d := f.failed(); d != time.Second {
		t.Fatalf("after ok: %v", d)
	}
	if d := (startFailures{}).failed(); d != 0 {
		t.Fatalf("without a runtime directory (not under systemd): %v", d)
	}
}
