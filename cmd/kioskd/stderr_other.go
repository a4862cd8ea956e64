//go:build !unix

package main

// stderrID: no journal outside Unix.
func stderrID() (dev, ino uint64, ok bool) { return 0, 0, false }
