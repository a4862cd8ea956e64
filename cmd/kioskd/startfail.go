package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Exit codes. 2 is a bad configuration: the unit does not restart it
// (RestartPreventExitStatus=2), the journal says which key. 3 is a state or
// hardware error at start (state_dir unusable, a control socket that cannot
// be made): the unit restarts it, and kioskd paces the restarts itself.
const (
	exitFailed = 1
	exitConfig = 2
	exitState  = 3
)

// Restarts after a state error are paced here rather than with systemd's
// RestartSteps= (systemd 254+; Raspberry Pi OS bookworm has 252): kioskd
// counts consecutive failed starts in its runtime directory, which the unit
// keeps across restarts (RuntimeDirectoryPreserve=restart), and waits
// 1 s, 2 s, 4 s … up to a minute before it exits. Added to RestartSec=5s
// that is a growing delay, never a hot loop. A start that gets to ready
// clears the count.
const (
	failFile     = "start-failures"
	failPauseMax = time.Minute
)

// startFailures is the count of consecutive failed starts, kept in dir.
type startFailures struct{ dir string }

func (f startFailures) path() string { return filepath.Join(f.dir, failFile) }

func (f startFailures) count() int {
	if f.dir == "" {
		return 0
	}
	b, err := os.ReadFile(f.path())
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return max(n, 0)
}

// failed records one more failure and returns the pause before exiting.
func (f startFailures) failed() time.Duration {
	if f.dir == "" {
		return 0 // not under systemd: a person is watching
	}
	n := f.count() + 1
	os.WriteFile(f.path(), []byte(strconv.Itoa(n)+"\n"), 0o600)
	return failPause(n)
}

// ok forgets earlier failures.
func (f startFailures) ok() {
	if f.dir != "" {
		os.Remove(f.path())
	}
}

// failPause is the pause after the n-th consecutive failure (n ≥ 1).
func failPause(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < failPauseMax; i++ {
		d *= 2
	}
	return min(d, failPauseMax)
}

// pause waits d or until ctx ends (SIGTERM during the pause stops at once).
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
