// Package waitfor is the one wait-for-condition helper of the tests: it polls
// a condition until it holds or a deadline passes. It exists so that no test
// sleeps a fixed time hoping something happened, and so that the deadline
// loop is written once.
package waitfor

import (
	"testing"
	"time"
)

// Timeout is how long Cond waits by default. Generous: processes under test
// (a spawned Mosquitto, an ingest, a loaded CI machine) take their time, and
// nothing here asserts how long they took.
const Timeout = 20 * time.Second

// Poll is the interval between two looks at the condition.
const Poll = 5 * time.Millisecond

// Within reports whether cond became true within d, polling it.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Poll)
	}
}

// Cond fails the test with what when cond does not become true within Timeout.
func Cond(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	CondWithin(tb, Timeout, what, cond)
}

// CondWithin is Cond with its own deadline.
func CondWithin(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Within(d, cond) {
		tb.Fatalf("waitfor: %s: not within %v", what, d)
	}
}
