package queue

import (
	"errors"
	"io/fs"
	"os"
)

// renameChecked renames old to new unless new exists (a check and a rename:
// not atomic, for filesystems without RENAME_NOREPLACE).
func renameChecked(old, new string) error {
	if _, err := os.Lstat(new); err == nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(old, new)
}

// writeZeros writes n zero bytes from the start of f.
func writeZeros(f *os.File, n int64) error {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < n; {
		k := min(int64(len(buf)), n-off)
		if _, err := f.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename or a new file in it is
// durable. Platforms that cannot sync a directory (Windows) skip it.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
