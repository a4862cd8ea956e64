// Package mailbox holds the latest value handed from a caller that must not
// wait to a goroutine that works at its own pace: a later Put replaces a
// value not yet taken.
package mailbox

import "sync"

// Box holds at most one value. The zero value is not usable: use New.
type Box[T any] struct {
	mu   sync.Mutex
	v    T
	full bool
	c    chan struct{}
}

// New returns an empty box.
func New[T any]() *Box[T] { return &Box[T]{c: make(chan struct{}, 1)} }

// Put replaces the held value with v and returns at once.
func (b *Box[T]) Put(v T) {
	b.mu.Lock()
	b.v, b.full = v, true
	b.mu.Unlock()
	select {
	case b.c <- struct{}{}:
	default:
	}
}

// C receives after a Put; then Take returns the value.
func (b *Box[T]) C() <-chan struct{} { return b.c }

// Take empties the box, reporting whether it held a value.
func (b *Box[T]) Take() (T, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.v, b.full
	var zero T
	b.v, b.full = zero, false
	return v, ok
}
