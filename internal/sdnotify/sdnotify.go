// Package sdnotify speaks systemd's notify protocol (sd_notify): READY=1,
// WATCHDOG=1, STATUS=…, STOPPING=1 as datagrams on $NOTIFY_SOCKET. Without
// systemd (no NOTIFY_SOCKET) every call is a no-op, so kioskd runs anywhere.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Notifier sends notifications to the service manager.
type Notifier struct {
	addr     *net.UnixAddr
	mu       sync.Mutex
	interval time.Duration
	last     time.Time
}

// FromEnv reads NOTIFY_SOCKET and WATCHDOG_USEC. The watchdog interval is
// half of WatchdogSec, as systemd recommends.
func FromEnv() *Notifier {
	n := &Notifier{}
	if path := os.Getenv("NOTIFY_SOCKET"); path != "" {
		if path[0] == '@' {
			path = "\x00" + path[1:]
		}
		n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid, perr := strconv.Atoi(os.Getenv("WATCHDOG_PID"))
		if perr != nil || pid == os.Getpid() {
			n.interval = time.Duration(us) * time.Microsecond / 2
		}
	}
	return n
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n.addr != nil }

// Send sends one notification state ("READY=1", "STATUS=…").
func (n *Notifier) Send(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// Watchdog sends WATCHDOG=1 when half the watchdog interval has passed since
// the last one. Call it from the loop whose liveness it proves.
func (n *Notifier) Watchdog(now time.Time) {
	if n.addr == nil || n.interval == 0 {
		return
	}
	n.mu.Lock()
	due := now.Sub(n.last) >= n.interval/2
	if due {
		n.last = now
	}
	n.mu.Unlock()
	if due {
		n.Send("WATCHDOG=1")
	}
}
