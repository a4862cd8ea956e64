//go:build !linux

package queue

import "os"

// renameNoReplace renames old to new, failing rather than replacing an
// existing new (checked just before the rename).
func renameNoReplace(old, new string) error { return renameChecked(old, new) }

// allocate gives f n bytes of real blocks.
func allocate(f *os.File, n int64) error { return writeZeros(f, n) }

// readOnlyFS is not known here: Open's own attempt to write tells.
func readOnlyFS(string) bool { return false }
