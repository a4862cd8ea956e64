// Package journallog is the log handler of the daemons that run under
// systemd (kioskd, kiosk-ingest): text lines on stderr, which systemd hands
// to the journal. When stderr is the journal (JOURNAL_STREAM names fd 2) each
// line starts with a "<N>" syslog priority prefix, which journald turns into
// the entry's priority (journalctl -p warning), and carries no time, which
// journald adds itself. Card numbers are masked whatever the caller passed;
// repeated warnings and errors are rate-limited.
package journallog

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Opts shape the log.
type Opts struct {
	// Level is the least level written (a slog.Level or a *slog.LevelVar);
	// nil: info.
	Level slog.Leveler
	// Journal: stderr is the journal (see StderrIsJournal). Lines then carry
	// a "<N>" priority prefix and no time.
	Journal bool
	// Burst warnings or errors with the same message from the same part
	// are written per Window; the rest are counted and the count is added
	// to the next one written. A broker that is down for a day, or a reader
	// that fails every poll, must not fill the journal (and the SD card).
	// Defaults: 5 per minute.
	Burst  int
	Window time.Duration
	Now    func() time.Time
}

// New returns the handler that writes to w: text lines, card numbers
// masked, repeated warnings and errors rate-limited.
func New(w io.Writer, o Opts) slog.Handler {
	if o.Burst <= 0 {
		o.Burst = 5
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &shared{o: o, out: w, keys: map[string]*key{}}
	hopts := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if o.Journal && len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return maskAttr(a)
	}}
	return &handler{s: s, inner: slog.NewTextHandler(&s.buf, hopts)}
}

// shared is what a handler and those derived from it (With) share.
type shared struct {
	o    Opts
	out  io.Writer
	mu   sync.Mutex
	buf  bytes.Buffer
	keys map[string]*key
}

type key struct {
	start      time.Time
	n          int // written in this window
	suppressed int
}

type handler struct {
	s      *shared
	inner  slog.Handler
	prefix string // the With attrs, to tell "part=mqtt" from "part=queue"
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	p := h.prefix
	for _, a := range as {
		p += " " + a.String()
	}
	return &handler{s: h.s, inner: h.inner.WithAttrs(as), prefix: p}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{s: h.s, inner: h.inner.WithGroup(name), prefix: h.prefix + " " + name + "."}
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		sup, ok := s.admit(r.Level.String()+"|"+h.prefix+"|"+r.Message, s.o.Now())
		if !ok {
			return nil
		}
		if sup > 0 {
			r = r.Clone()
			r.AddAttrs(slog.Int("suppressed", sup))
		}
	}
	s.buf.Reset()
	if s.o.Journal {
		s.buf.WriteString(priority(r.Level))
	}
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := s.out.Write(s.buf.Bytes())
	return err
}

// maxKeys bounds the rate limiter's memory; messages are constants in the
// code, so this is reached only if a message carries variable text.
const maxKeys = 512

// admit decides whether a record with this key is written now, and how many
// like it were suppressed before it.
func (s *shared) admit(id string, now time.Time) (suppressed int, ok bool) {
	k := s.keys[id]
	if k == nil || now.Sub(k.start) >= s.o.Window || now.Before(k.start) {
		if k == nil {
			if len(s.keys) >= maxKeys {
				for kk, v := range s.keys {
					if now.Sub(v.start) >= s.o.Window {
						delete(s.keys, kk)
					}
				}
				if len(s.keys) >= maxKeys {
					clear(s.keys)
				}
			}
			k = &key{}
			s.keys[id] = k
		}
		k.start, k.n = now, 0
	}
	if k.n >= s.o.Burst {
		k.suppressed++
		return 0, false
	}
	k.n++
	sup := k.suppressed
	k.suppressed = 0
	return sup, true
}

// priority is sd-daemon(3)'s syslog prefix for a level.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

// chipKeys are attribute names that carry a card number.
var chipKeys = map[string]bool{"chip": true, "chipnumber": true, "chip_number": true, "uid": true, "card": true}

// maskAttr masks card numbers: under a card key any string, elsewhere any
// value that is exactly a 4-, 7- or 10-byte UID in hex. Callers already
// pass protocol.MaskChip; this is the net under them.
func maskAttr(a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindString {
		return a
	}
	v := a.Value.String()
	if strings.Contains(v, "…") {
		return a // masked already
	}
	if chipKeys[strings.ToLower(a.Key)] || looksLikeUID(v) {
		return slog.String(a.Key, protocol.MaskChip(v))
	}
	return a
}

func looksLikeUID(v string) bool {
	switch len(v) {
	case 8, 14, 20:
	default:
		return false
	}
	digits := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c >= 'A' && c <= 'F', c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return digits
}

// ParseLevel reads a level name (debug, info, warn, error); anything else
// is info.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// Stream reports whether stderr is connected to the journal, as systemd
// says in JOURNAL_STREAM ("dev:inode"), checked against stat of fd 2 so an
// inherited variable does not fool a program run from a shell.
func Stream(env string, stat func() (dev, ino uint64, ok bool)) bool {
	d, i, found := strings.Cut(env, ":")
	if !found {
		return false
	}
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	sd, si, ok := stat()
	return ok && sd == dev && si == ino
}

// StderrIsJournal reports whether this process's stderr is the journal
// (JOURNAL_STREAM set by systemd and naming fd 2).
func StderrIsJournal() bool { return Stream(os.Getenv("JOURNAL_STREAM"), StderrID) }
