//go:build !linux

package host

import "time"

var start = time.Now()

// Off Linux (a developer's laptop running the demo) the clock is taken as
// synchronised and uptime counts from process start.
func clockSynced() bool { return true }

func uptime() time.Duration { return time.Since(start) }
