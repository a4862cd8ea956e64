//go:build !unix

package queue

// freeBytes is unknown here: MinFreeBytes is not enforced.
func freeBytes(string) (int64, bool) { return 0, false }
