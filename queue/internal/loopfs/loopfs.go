// Package loopfs gives a test a small filesystem of its own: an ext4 image
// file, loop-mounted on a temporary directory, so that the test can fill the
// disk for real (ENOSPC from the kernel, not a fake) or remount it read-only.
// It needs root (mount); without it the test is skipped, saying why.
package loopfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FS is one mounted filesystem.
type FS struct {
	Dir string // the mount point
	img string
}

// Mount makes an ext4 filesystem of size bytes (no blocks reserved for root,
// so that root fills it as a service user would) and mounts it for the
// test's duration. It skips tb when mounting is not permitted.
func Mount(tb testing.TB, size int64) *FS {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("loopfs: needs root to loop-mount a small ext4 filesystem; skipped")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		tb.Skip("loopfs: mkfs.ext4 not installed; skipped")
	}
	base := tb.TempDir()
	fs := &FS{Dir: filepath.Join(base, "mnt"), img: filepath.Join(base, "fs.img")}
	if err := os.Mkdir(fs.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(fs.img)
	if err != nil {
		tb.Fatal(err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", fs.img).CombinedOutput(); err != nil {
		tb.Fatalf("loopfs: mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", fs.img, fs.Dir).CombinedOutput(); err != nil {
		tb.Skipf("loopfs: loop mount not permitted here (%v: %s); skipped", err, strings.TrimSpace(string(out)))
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", fs.Dir).CombinedOutput(); err != nil {
			// A lazy unmount lets the test's temporary directory go.
			exec.Command("umount", "-l", fs.Dir).Run()
			tb.Logf("loopfs: umount %s: %v: %s", fs.Dir, err, out)
		}
	})
	// lost+found is not the test's.
	return fs
}

// Free is the space an unprivileged writer may still use, in bytes.
func (fs *FS) Free(tb testing.TB) int64 {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(fs.Dir, &st); err != nil {
		tb.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill writes a file named name until at most leave bytes are free (leave 0:
// until the disk is full) and returns its path. It fsyncs, so the space is
// gone for real.
func (fs *FS) Fill(tb testing.TB, name string, leave int64) string {
	tb.Helper()
	p := filepath.Join(fs.Dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		free := fs.Free(tb)
		n := free - leave
		if n <= 0 {
			break
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), n)]); err != nil {
			break // ENOSPC: full
		}
		if n <= int64(len(buf)) {
			f.Sync()
		}
	}
	if err := f.Sync(); err != nil {
		tb.Logf("loopfs: fill sync: %v", err)
	}
	return p
}

// Remount mounts the filesystem again with opts ("ro", "rw").
func (fs *FS) Remount(tb testing.TB, opts string) {
	tb.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, fs.Dir).CombinedOutput(); err != nil {
		tb.Fatalf("loopfs: remount %s: %v: %s", opts, err, out)
	}
}

// String names the filesystem for logs.
func (fs *FS) String() string { return fmt.Sprintf("loopfs(%s)", fs.Dir) }
