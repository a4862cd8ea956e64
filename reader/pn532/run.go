package pn532

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/uitpas/tap-kiosk/reader"
)

// Run polls for cards until ctx is done and delivers a reader.Tap for every
// card that enters the field, and reader.Health when the chip fails and when
// it recovers. It returns ctx.Err(), or ErrHalted after Halt.
func (d *Dev) Run(ctx context.Context, events chan<- reader.Event) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer d.running.Store(false)
	defer func() {
		if d.runT != nil {
			d.disarm(d.runT)
		}
	}()
	r := runState{d: d, events: events}
	ready := false
	for {
		if !ready {
			if err := r.recover(ctx); err != nil {
				return err
			}
			ready = true
		}
		uid, err := d.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrHalted):
			return ErrHalted
		case errors.Is(err, ErrBadReply):
			// The chip is fine; what it heard from a card was not.
			d.lim.Log(d.log, d.clk.Now(), slog.LevelWarn, "reply", "pn532: ignored a malformed card reply", "err", err)
		case err != nil:
			d.lim.Log(d.log, d.clk.Now(), slog.LevelWarn, "poll", "pn532: poll failed; re-initialising", "err", err)
			ready = false
			continue
		default:
			if r.seen(uid) {
				if err := r.send(ctx, reader.Event{Tap: &reader.Tap{UID: bytes.Clone(uid), At: d.clk.Now()}}); err != nil {
					return err
				}
			}
		}
		if err := d.sleep(ctx, &d.runT, d.opts.PollInterval); err != nil {
			return err
		}
	}
}

// runState is what one Run remembers between cycles.
type runState struct {
	d       *Dev
	events  chan<- reader.Event
	faulted bool
	// The card last taken as a tap, and how many cycles in a row missed it.
	card   [10]byte
	cardN  int
	absent int
}

// seen updates presence with one cycle's result and reports a new tap.
func (r *runState) seen(uid []byte) bool {
	if uid == nil {
		if r.cardN > 0 {
			r.absent++
			if r.absent >= r.d.opts.AbsentCycles {
				r.cardN = 0
			}
		}
		return false
	}
	if r.cardN > 0 && bytes.Equal(uid, r.card[:r.cardN]) {
		r.absent = 0
		return false
	}
	r.cardN = copy(r.card[:], uid)
	r.absent = 0
	return true
}

func (r *runState) send(ctx context.Context, ev reader.Event) error {
	select {
	case r.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recover (re)initialises the chip until it answers: with doubling backoff
// between attempts and a hardware reset every ResetAfter failures. The first
// failure is reported as Health Fault, the success after it as Health OK.
func (r *runState) recover(ctx context.Context) error {
	d := r.d
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := d.sleep(ctx, &d.runT, backoff(d.opts, attempt)); err != nil {
				return err
			}
		}
		if attempt > 0 && attempt%d.opts.ResetAfter == 0 && d.rst != nil {
			d.log.Info("pn532: resetting the chip through RSTPD_N", "attempt", attempt)
			if err := d.hardReset(ctx); err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrHalted) {
					return err
				}
				d.lim.Log(d.log, d.clk.Now(), slog.LevelError, "reset", "pn532: hardware reset failed", "err", err)
			}
		}
		fw, err := d.Init(ctx)
		if err == nil {
			d.log.Info("pn532: ready", "firmware", fw.String(), "bus", d.String(), "softwareBitOrder", d.soft)
			if r.faulted {
				r.faulted = false
				return r.send(ctx, reader.Event{Health: &reader.Health{State: reader.OK}})
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrHalted) {
			return err
		}
		d.lim.Log(d.log, d.clk.Now(), slog.LevelError, "init", "pn532: chip does not answer", "err", err)
		if !r.faulted {
			r.faulted = true
			if err := r.send(ctx, reader.Event{Health: &reader.Health{State: reader.Fault, Err: err}}); err != nil {
				return err
			}
		}
	}
}

// backoff is the pause before re-initialisation attempt n (n ≥ 1).
func backoff(o Opts, n int) time.Duration {
	b := o.Backoff
	for i := 1; i < n && b < o.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, o.MaxBackoff)
}
