package testbroker

import (
	"fmt"
	"os"
	"sync"
)

// Standalone is a T for programs (the bench tool, the fleet simulator) that
// start a Mosquitto outside a test. Fatal panics with a Failure, which Run
// turns back into an error.
type Standalone struct {
	Dir      string // temporary directories are made below it
	mu       sync.Mutex
	cleanups []func()
}

// Failure is what Standalone's Fatal panics with.
type Failure struct{ Msg string }

func (f Failure) Error() string { return "testbroker: " + f.Msg }

// Helper does nothing.
func (s *Standalone) Helper() {}

// Log writes to stderr.
func (s *Standalone) Log(a ...any) { fmt.Fprintln(os.Stderr, a...) }

// Fatal panics with a Failure.
func (s *Standalone) Fatal(a ...any) { panic(Failure{fmt.Sprint(a...)}) }

// Fatalf panics with a Failure.
func (s *Standalone) Fatalf(format string, a ...any) { panic(Failure{fmt.Sprintf(format, a...)}) }

// Cleanup registers f for Close.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir makes a new directory below Dir.
func (s *Standalone) TempDir() string {
	d, err := os.MkdirTemp(s.Dir, "t")
	if err != nil {
		s.Fatal(err)
	}
	return d
}

// Close runs the cleanups, last first; it may be called from another
// goroutine than the one that registers them (a program's interrupt).
func (s *Standalone) Close() {
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Run calls f and turns a Fatal inside it into an error.
func (s *Standalone) Run(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(Failure)
			if !ok {
				panic(r)
			}
			err = f
		}
	}()
	return f()
}
