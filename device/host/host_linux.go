package host

import (
	"time"

	"golang.org/x/sys/unix"
)

func clockSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR
}

func uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
