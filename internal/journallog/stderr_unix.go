//go:build unix

package journallog

import (
	"os"
	"syscall"
)

// StderrID is the device and inode of fd 2, to compare with JOURNAL_STREAM.
func StderrID() (dev, ino uint64, ok bool) {
	fi, err := os.Stderr.Stat()
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}
