package testbroker

import (
	"fmt"
	"os"
)

// Standalone is a T for programs (the bench tool, the fleet simulator) that
// start a Mosquitto outside a test. Fatal panics with a Failure, which Run
// turns back into an error.
type Standalone struct {
	Dir      string // temporary directories are made below it
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
func (s *Standalone) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

// TempDir makes a new directory below Dir.
func (s *Standalone) TempDir() string {
	d, err := os.MkdirTemp(s.Dir, "t")
	if err != nil {
		s.Fatal(err)
	}
	return d
}

// Close runs the cleanups, last first.
func (s *Standalone) Close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
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
