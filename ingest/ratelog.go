package ingest

import (
	"log/slog"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
)

// rateLog logs at most one line per key and interval, saying how many were
// left out since the last line, so a kiosk sending garbage in a loop cannot
// flood the journal.
type rateLog struct {
	log   *slog.Logger
	clk   clock.Clock
	every time.Duration

	mu   sync.Mutex
	keys map[string]*rateKey
}

type rateKey struct {
	last       time.Time
	suppressed int
}

func newRateLog(log *slog.Logger, clk clock.Clock, every time.Duration) *rateLog {
	return &rateLog{log: log, clk: clk, every: every, keys: map[string]*rateKey{}}
}

// Warn logs msg under key unless a line for key went out within the interval.
func (r *rateLog) Warn(key, msg string, args ...any) {
	now := r.clk.Now()
	r.mu.Lock()
	k, ok := r.keys[key]
	if !ok {
		if len(r.keys) >= 1024 { // keys come from a small fixed set; stay bounded anyway
			clear(r.keys)
		}
		k = &rateKey{}
		r.keys[key] = k
	}
	if ok && now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
}
