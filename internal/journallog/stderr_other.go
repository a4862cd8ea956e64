//go:build !unix

package journallog

// StderrID: no journal outside Unix.
func StderrID() (dev, ino uint64, ok bool) { return 0, 0, false }
