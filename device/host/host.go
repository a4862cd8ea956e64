// Package host reads what the kiosk records about its own clock with every
// checkin: whether the system clock is synchronised, the boot id and the
// uptime. A Raspberry Pi has no real-time clock, so central needs these to
// date a tap made before NTP set the time.
package host

import (
	"os"
	"strings"
	"time"
)

// Info is the kernel's view of the clock.
type Info struct {
	bootID string
}

// New reads the boot id once (it cannot change while we run).
func New() *Info {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	id := strings.TrimSpace(string(b))
	if err != nil || id == "" {
		id = "unknown"
	}
	return &Info{bootID: id}
}

// BootID tells boots apart.
func (i *Info) BootID() string { return i.bootID }

// ClockSynced reports whether the kernel considers the clock synchronised,
// as systemd's timedatectl does ("System clock synchronized"): the
// kernel's maximum error is under 16 s. Not STA_UNSYNC: chrony without
// rtcsync leaves it set while it keeps the clock synchronised (to keep the
// kernel off the RTC), which the VM test found.
func (i *Info) ClockSynced() bool { return clockSynced() }

// maxSyncErrorUs is the kernel's largest maximum error (NTP_PHASE_LIMIT,
// 16 s in µs): it grows to this while nothing disciplines the clock.
const maxSyncErrorUs = 16_000_000

// syncedByMaxError is the decision of ClockSynced from adjtimex's maxerror
// (µs).
func syncedByMaxError(maxErrorUs int64) bool { return maxErrorUs >= 0 && maxErrorUs < maxSyncErrorUs }

// Uptime is the time since boot, suspend included.
func (i *Info) Uptime() time.Duration { return uptime() }

// Fixed is an Info for tests and simulators.
type Fixed struct {
	Synced bool
	Boot   string
	Up     func() time.Duration
}

// ClockSynced returns f.Synced.
func (f *Fixed) ClockSynced() bool { return f.Synced }

// BootID returns f.Boot.
func (f *Fixed) BootID() string { return f.Boot }

// Uptime returns f.Up(), or 0.
func (f *Fixed) Uptime() time.Duration {
	if f.Up == nil {
		return 0
	}
	return f.Up()
}
