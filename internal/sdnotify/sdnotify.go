// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): READY=1,
// WATCHDOG=1, STATUS=…, STOPPING=1 as datagrams on $NOTIFY_SOCKET. Without
// systemd (no NOTIFY_SOCKET) every call is a no-op, so kioskd runs anywhere.
//
// It is small enough to keep instead of github.com/coreos/go-systemd: the
// protocol is one datagram per call, and what matters here is who calls
// Watchdog (the tap loop, never a free-running goroutine).
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrWatchdogEnv marks a WATCHDOG_USEC that cannot be used.
var ErrWatchdogEnv = errors.New("sdnotify: bad WATCHDOG_USEC")

// Notifier sends notifications to the service manager. The zero value and
// a nil *Notifier are disabled notifiers; all methods are safe for
// concurrent use.
type Notifier struct {
	addr    *net.UnixAddr
	timeout time.Duration // WatchdogSec; 0: no watchdog

	mu         sync.Mutex
	lastPet    time.Time
	lastStatus string
}

// New returns a notifier that sends to the unixgram socket at path ("" for
// none; a leading '@' is an abstract socket) and expects a WATCHDOG=1 within
// every watchdog (0 for no watchdog).
func New(path string, watchdog time.Duration) *Notifier {
	n := &Notifier{timeout: watchdog}
	if path != "" {
		if path[0] == '@' {
			path = "\x00" + path[1:]
		}
		n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	}
	return n
}

// FromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as systemd
// sets them. A watchdog meant for another process (WATCHDOG_PID) is ignored;
// an unparsable WATCHDOG_USEC is reported with err while the notifier still
// works without a watchdog.
func FromEnv() (n *Notifier, err error) {
	return fromEnv(os.Getenv, os.Getpid())
}

func fromEnv(getenv func(string) string, pid int) (*Notifier, error) {
	var wd time.Duration
	var err error
	if s := getenv("WATCHDOG_USEC"); s != "" {
		us, perr := strconv.ParseInt(s, 10, 64)
		switch {
		case perr != nil || us <= 0:
			err = fmt.Errorf("%w: %q", ErrWatchdogEnv, s)
		default:
			wd = time.Duration(us) * time.Microsecond
			if p := getenv("WATCHDOG_PID"); p != "" {
				if wp, perr := strconv.Atoi(p); perr != nil || wp != pid {
					wd = 0
				}
			}
		}
	}
	return New(getenv("NOTIFY_SOCKET"), wd), err
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// WatchdogTimeout is the service's WatchdogSec, 0 when it has none.
func (n *Notifier) WatchdogTimeout() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.timeout
}

// Send sends one notification: one or more newline-separated assignments
// ("READY=1\nSTATUS=up").
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready tells the service manager that start-up is complete, with a first
// status line.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1\nSTATUS=" + oneLine(status))
}

// Stopping tells the service manager that shutdown has begun.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status sets the line `systemctl status` shows. An unchanged line is not
// sent again.
func (n *Notifier) Status(line string) error {
	if !n.Enabled() {
		return nil
	}
	line = oneLine(line)
	n.mu.Lock()
	same := line == n.lastStatus
	n.lastStatus = line
	n.mu.Unlock()
	if same {
		return nil
	}
	return n.Send("STATUS=" + line)
}

// Watchdog sends WATCHDOG=1 when a quarter of the watchdog timeout has
// passed since the last one: called about every second from a loop, that
// keeps the manager fed at least twice per timeout even when one iteration
// of the loop is slow. Call it only from the loop whose liveness it proves.
func (n *Notifier) Watchdog(now time.Time) error {
	if n.WatchdogTimeout() == 0 {
		return nil
	}
	n.mu.Lock()
	due := n.lastPet.IsZero() || now.Sub(n.lastPet) >= n.timeout/4 || now.Before(n.lastPet)
	if due {
		n.lastPet = now
	}
	n.mu.Unlock()
	if !due {
		return nil
	}
	return n.Send("WATCHDOG=1")
}

// oneLine keeps a status to one line: a newline would start a new
// assignment in the datagram.
func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
