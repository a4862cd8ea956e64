package kiosk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A state directory made beforehand by another user is refused; one of
// kioskd's own user left open to others is tightened; a queue.db that is a
// symbolic link is not followed.
func TestStateDirMustBeOurs(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "tcp://127.0.0.1:1")

	os.MkdirAll(cfg.StateDir, 0o777)
	os.Chmod(cfg.StateDir, 0o777)
	k, err := New(cfg, Opts{})
	if err != nil {
		t.Fatalf("an open directory of our own: %v", err)
	}
	k.release()
	if fi, _ := os.Stat(cfg.StateDir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("state_dir left %#o, want 0700", fi.Mode().Perm())
	}

	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other")
		os.Mkdir(other, 0o755)
		os.Chown(other, 12345, 12345)
		cfg2 := cfg
		cfg2.StateDir = other
		if _, err := New(cfg2, Opts{}); err == nil || !strings.Contains(err.Error(), "uid 12345") {
			t.Fatalf("another user's directory: %v", err)
		}
	}

	cfg3 := testConfig(t, t.TempDir(), "tcp://127.0.0.1:1")
	os.MkdirAll(cfg3.StateDir, 0o700)
	target := filepath.Join(dir, "elsewhere.db")
	os.Symlink(target, cfg3.QueuePath())
	if _, err := New(cfg3, Opts{}); !errors.Is(err, errLink) {
		t.Fatalf("queue.db a symbolic link: %v", err)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("the link's target was written")
	}
}

// The control socket's directory, likewise: another user's is refused.
func TestSocketDirMustBeOurs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a directory of another user needs root")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "tcp://127.0.0.1:1")
	sockDir := filepath.Join(dir, "run")
	os.Mkdir(sockDir, 0o777)
	os.Chmod(sockDir, 0o777)
	os.Chown(sockDir, 12345, 12345)
	cfg.Control.Socket = filepath.Join(sockDir, "control.sock")
	k, err := New(cfg, Opts{})
	if err != nil {
		t.Fatal(err)
	}
	err = k.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "uid 12345") {
		t.Fatalf("Run with another user's socket directory: %v", err)
	}
}
