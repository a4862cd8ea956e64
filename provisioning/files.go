package provisioning

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Files kioskd keeps in state_dir, next to the queue database.
const (
	// IdentityFile is the device's private key (PKCS #8 PEM, mode 0600).
	IdentityFile = "identity.key"
	// BundleFile is the applied provisioning bundle (JSON). Copying a
	// bundle here is the same as `kioskctl provision apply`.
	BundleFile = "bundle.json"
	// RemoteConfigFile is the last accepted signed Config payload.
	RemoteConfigFile = "config.json"
)

// WriteFileAtomic replaces path with data so that a power cut leaves the
// old or the new file, never a torn one: temp file in the same directory,
// fsync, rename, fsync of the directory. When run as root (kioskctl under
// sudo) the file gets the directory's owner, so that kioskd, running as its
// own user, can read what the technician wrote.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(dir); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				f.Chown(int(st.Uid), int(st.Gid))
			}
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// writeNew is WriteFileAtomic for a file that must not exist yet (keys).
func writeNew(path string, data []byte, perm os.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %w", path, os.ErrExist)
	}
	return WriteFileAtomic(path, data, perm)
}
