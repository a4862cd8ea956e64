package kiosk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/reader"
)

// Hardware that is missing or failing at start does not stop kioskd: a kiosk
// whose buzzer is unplugged still saves points, one whose reader is not
// answering still shows the desk, drains its queue and tells central. Each
// part is opened behind a wrapper that retries the open with doubling
// backoff and reports the fault meanwhile.

const (
	reopenFirst = time.Second
	reopenMax   = time.Minute
)

// reopenDelay is the pause before open attempt n (n ≥ 1) after a failure.
func reopenDelay(n int) time.Duration {
	d := reopenFirst
	for i := 1; i < n && d < reopenMax; i++ {
		d *= 2
	}
	return min(d, reopenMax)
}

// sleep waits d on clk, or until ctx is done.
func sleep(ctx context.Context, clk clock.Clock, d time.Duration) error {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openedReader is a reader and how to release it.
type openedReader struct {
	r    reader.Reader
	halt func() error
}

// retryReader opens its reader in Run and keeps trying while it cannot;
// meanwhile the core has a Fault and shows the desk.
type retryReader struct {
	name string
	open func() (openedReader, error)
	clk  clock.Clock
	log  *slog.Logger

	mu  sync.Mutex
	cur *openedReader
}

func (r *retryReader) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		return r.cur.r.String()
	}
	return r.name + " (not open)"
}

// Run opens the reader (again, after it gave up) and runs it until ctx is done.
func (r *retryReader) Run(ctx context.Context, events chan<- reader.Event) error {
	send := func(h reader.Health) error {
		select {
		case events <- reader.Event{Health: &h}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	faulted := false
	for attempt := 0; ; {
		o, err := r.open()
		if err != nil {
			attempt++
			if !faulted {
				faulted = true
				r.log.Error("reader cannot be opened; retrying", "reader", r.name, "err", err)
				if err := send(reader.Health{State: reader.Fault, Err: err}); err != nil {
					return err
				}
			} else {
				r.log.Debug("reader still cannot be opened", "reader", r.name, "attempt", attempt, "err", err)
			}
			if err := sleep(ctx, r.clk, reopenDelay(attempt)); err != nil {
				return err
			}
			continue
		}
		if faulted {
			r.log.Info("reader opened", "reader", o.r.String(), "attempts", attempt+1)
			faulted = false
			if err := send(reader.Health{State: reader.OK}); err != nil {
				o.halt()
				return err
			}
		}
		attempt = 0
		r.mu.Lock()
		r.cur = &o
		r.mu.Unlock()
		err = o.r.Run(ctx, events)
		r.mu.Lock()
		r.cur = nil
		r.mu.Unlock()
		if herr := o.halt(); herr != nil {
			r.log.Warn("reader halt", "err", herr)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		faulted = true
		attempt = 1
		r.log.Error("reader stopped; reopening", "reader", r.name, "err", err)
		if err := send(reader.Health{State: reader.Fault, Err: err}); err != nil {
			return err
		}
		if err := sleep(ctx, r.clk, reopenDelay(attempt)); err != nil {
			return err
		}
	}
}

// slot holds a display or indicator that may not be open yet, and retries
// opening it in the background until it is or the slot is halted.
type slot[T any] struct {
	name string
	clk  clock.Clock
	log  *slog.Logger

	mu      sync.Mutex
	cur     T
	open    bool
	openErr error
	onOpen  func(T)
	stop    context.CancelFunc
	done    chan struct{}
}

// newSlot opens with open at once; on failure it keeps retrying in the
// background, calling onOpen (under no lock) once it succeeds.
func newSlot[T any](name string, clk clock.Clock, log *slog.Logger, open func() (T, error), onOpen func(T)) *slot[T] {
	s := &slot[T]{name: name, clk: clk, log: log, onOpen: onOpen, done: make(chan struct{})}
	v, err := open()
	if err == nil {
		s.cur, s.open = v, true
		close(s.done)
		return s
	}
	s.openErr = err
	log.Error("cannot be opened; running without it and retrying", "part", name, "err", err)
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.retry(ctx, open)
	return s
}

func (s *slot[T]) retry(ctx context.Context, open func() (T, error)) {
	defer close(s.done)
	for attempt := 1; ; attempt++ {
		if sleep(ctx, s.clk, reopenDelay(attempt)) != nil {
			return
		}
		v, err := open()
		if err != nil {
			s.mu.Lock()
			s.openErr = err
			s.mu.Unlock()
			s.log.Debug("still cannot be opened", "part", s.name, "attempt", attempt, "err", err)
			continue
		}
		s.mu.Lock()
		if ctx.Err() != nil { // halted meanwhile: release what just opened
			s.mu.Unlock()
			if h, ok := any(v).(interface{ Halt() error }); ok {
				h.Halt()
			}
			return
		}
		s.cur, s.open, s.openErr = v, true, nil
		s.mu.Unlock()
		s.log.Info("opened", "part", s.name, "attempts", attempt+1)
		if s.onOpen != nil {
			s.onOpen(v)
		}
		return
	}
}

// get returns the part when it is open.
func (s *slot[T]) get() (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.open
}

// err is the part's health: why it is not open, or its own Err.
func (s *slot[T]) err() error {
	s.mu.Lock()
	cur, open, openErr := s.cur, s.open, s.openErr
	s.mu.Unlock()
	if !open {
		return fmt.Errorf("kiosk: %s not open: %w", s.name, openErr)
	}
	if h, ok := any(cur).(interface{ Err() error }); ok {
		return h.Err()
	}
	return nil
}

// halt stops retrying and halts the part if it is open.
func (s *slot[T]) halt() error {
	if s.stop != nil {
		s.stop()
	}
	<-s.done
	s.mu.Lock()
	cur, open := s.cur, s.open
	s.open = false
	s.openErr = errors.New("halted")
	s.mu.Unlock()
	if !open {
		return nil
	}
	if h, ok := any(cur).(interface{ Halt() error }); ok {
		return h.Halt()
	}
	return nil
}

// retryDisplay is a display that may not be open yet: until it is, screens
// are kept (the last one is drawn on open) and its health is a fault.
type retryDisplay struct {
	s    *slot[display.Display]
	mu   sync.Mutex
	last *display.Screen
}

func newRetryDisplay(name string, clk clock.Clock, log *slog.Logger, open func() (display.Display, error)) *retryDisplay {
	d := &retryDisplay{}
	d.s = newSlot(name, clk, log.With("part", "display"), open, func(out display.Display) {
		d.mu.Lock()
		last := d.last
		d.mu.Unlock()
		if last != nil {
			out.Show(*last)
		}
	})
	return d
}

func (d *retryDisplay) Show(s display.Screen) {
	d.mu.Lock()
	d.last = &s
	d.mu.Unlock()
	if out, ok := d.s.get(); ok {
		out.Show(s)
	}
}

func (d *retryDisplay) Halt() error { return d.s.halt() }
func (d *retryDisplay) Err() error  { return d.s.err() }

func (d *retryDisplay) String() string {
	if out, ok := d.s.get(); ok {
		return out.String()
	}
	return d.s.name + " (not open)"
}

// indicator is what kioskd drives for the buzzer and LED.
type indicator interface {
	display.Indicator
	Err() error
	Halt() error
}

// retryIndicator is a buzzer and LED that may not be open yet: signals are
// dropped until they are (the screen still tells the passholder).
type retryIndicator struct{ s *slot[indicator] }

func (i retryIndicator) Signal(p display.Pattern) {
	if ind, ok := i.s.get(); ok {
		ind.Signal(p)
	}
}

func (i retryIndicator) Err() error  { return i.s.err() }
func (i retryIndicator) Halt() error { return i.s.halt() }
