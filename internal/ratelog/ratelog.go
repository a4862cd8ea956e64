// Package ratelog keeps repeated log lines from flooding the journal (and
// wearing a kiosk's SD card): per key, one line per interval goes out, and
// the next one says how many were left out meanwhile. A failing reader, a
// central sending garbage or a kiosk in a loop all log through it.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the keys remembered; keys come from small fixed sets, but a
// limiter must stay bounded whatever its callers do.
const maxKeys = 1024

// Limiter rate-limits log lines per key. The zero value is not usable: use
// New. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*state
}

type state struct {
	last       time.Time
	suppressed int
}

// New returns a limiter that lets one line per key through every interval.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, keys: map[string]*state{}}
}

// Log logs msg at level with args unless a line for key went out less than
// the interval before now (from the caller's injected clock). A line that
// follows left-out ones carries suppressed=N. It reports whether it logged.
func (l *Limiter) Log(log *slog.Logger, now time.Time, level slog.Level, key, msg string, args ...any) bool {
	l.mu.Lock()
	k, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= maxKeys {
			clear(l.keys)
		}
		k = &state{}
		l.keys[key] = k
	}
	if ok && now.Sub(k.last) < l.every {
		k.suppressed++
		l.mu.Unlock()
		return false
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
	return true
}
