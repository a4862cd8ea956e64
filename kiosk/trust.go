package kiosk

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
)

// A directory kioskd keeps its state or its control socket in must be its
// own: one made beforehand by another user, or writable by others, would let
// that user put a bundle in it, move the queue away or answer in place of
// the socket. ownDir makes dir (0700) if missing; a directory of kioskd's
// own user that is open to others is tightened to 0700 (logged); one owned
// by another user is refused. Root-owned directories that nobody else can
// write (/run, where a RuntimeDirectory lives) are accepted as they are.
func ownDir(dir, key string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("kiosk: %s %s: %w", key, dir, unwrapPath(err))
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("kiosk: %s %s: %w", key, dir, unwrapPath(err))
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// MkdirAll accepted a link to a directory: follow it only if the
		// target passes the same checks.
		if fi, err = os.Stat(dir); err != nil {
			return fmt.Errorf("kiosk: %s %s: %w", key, dir, unwrapPath(err))
		}
	}
	if !fi.IsDir() {
		return fmt.Errorf("kiosk: %s %s: not a directory", key, dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // not a Unix filesystem: nothing to judge
	}
	me := uint32(os.Geteuid())
	open := fi.Mode().Perm()&0o022 != 0
	switch {
	case st.Uid == me && open:
		if err := os.Chmod(dir, fi.Mode().Perm()&^0o077); err != nil {
			return fmt.Errorf("kiosk: %s %s is writable by others and cannot be tightened: %w", key, dir, unwrapPath(err))
		}
		log.Warn("directory was writable by other users: tightened", "key", key, "dir", dir,
			"was", fmt.Sprintf("%#o", fi.Mode().Perm()), "now", fmt.Sprintf("%#o", fi.Mode().Perm()&^0o077))
	case st.Uid == me:
	case st.Uid == 0 && !open:
	default:
		return fmt.Errorf("kiosk: %s %s belongs to uid %d (mode %#o), not to this user (uid %d): remove it or give it to this user",
			key, dir, st.Uid, fi.Mode().Perm(), me)
	}
	return nil
}

// errLink is wrapped when a state file is a symbolic link.
var errLink = errors.New("is a symbolic link; kioskd does not follow links in its state directory")
