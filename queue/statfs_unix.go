//go:build unix

package queue

import "golang.org/x/sys/unix"

// freeBytes reports the bytes available to an unprivileged writer on the
// filesystem holding dir.
func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize)), true
}
