package testbroker

import (
	"strings"
	"syscall"
	"time"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// Reload sends Mosquitto SIGHUP (what `systemctl reload mosquitto` does: it
// rereads its configuration, ACL file, certificates and CRL) and waits until
// it logged the reload. The embedded broker has nothing to reload.
func (b *Broker) Reload() {
	b.tb.Helper()
	if b.cmd == nil {
		if b.emb != nil {
			return
		}
		b.tb.Fatal("testbroker: reload of a stopped broker")
	}
	before := strings.Count(b.Log(), "Reloading config")
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.tb.Fatalf("testbroker: SIGHUP: %v", err)
	}
	if !waitfor.Within(10*time.Second, func() bool { return strings.Count(b.Log(), "Reloading config") > before }) {
		b.tb.Fatalf("testbroker: mosquitto did not log a reload within 10s:\n%s", b.Log())
	}
}
