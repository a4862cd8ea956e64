package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/internal/sdnotify"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// wedgeEnv is a test hook: KIOSKD_TEST_WEDGE=after-3s makes the tap loop's
// tick block for good 3 s after start, as a hung loop would. The notify
// test uses it to prove the watchdog stops then; nothing else should set it.
const wedgeEnv = "KIOSKD_TEST_WEDGE"

// statusEvery paces the STATUS= line; it is sent only when it changed.
const statusEvery = 5 * time.Second

// service ties kioskd to its service manager through the kiosk's hooks.
type service struct {
	n     *sdnotify.Notifier
	log   *slog.Logger
	now   func() time.Time
	start time.Time
	wedge time.Duration // test hook; 0: off
	cfg   provisioning.Config
	k     *kiosk.Kiosk
	// readied: OnReady ran (set on Run's goroutine before the tap loop starts).
	readied bool
}

// cannotStart reports a start that failed in one line and decides the exit
// code: 2 for a configuration error (not restarted), 3 for state or
// hardware, after a pause that grows with each consecutive failure.
func (s *service) cannotStart(ctx context.Context, fails startFailures, err error) int {
	code := exitState
	if errors.Is(err, provisioning.ErrConfig) {
		code = exitConfig
	}
	wait := time.Duration(0)
	if code == exitState {
		wait = fails.failed()
	}
	s.log.Error("cannot start", "err", err, "exit", code, "retryPause", wait)
	line := "cannot start: " + err.Error()
	if wait > 0 {
		line += fmt.Sprintf(" (exiting in %s; systemd restarts kioskd)", wait)
	}
	s.n.Status(line)
	pause(ctx, wait)
	return code
}

// parseWedge reads the test hook's value ("after-3s").
func parseWedge(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	s, ok := strings.CutPrefix(v, "after-")
	d, err := time.ParseDuration(s)
	if !ok || err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want after-DURATION, such as after-3s", wedgeEnv, v)
	}
	if d == 0 {
		d = time.Nanosecond
	}
	return d, nil
}

// tick runs on the tap loop (kiosk.Opts.OnTick) and nowhere else: the
// watchdog is fed only while that loop turns.
func (s *service) tick() {
	now := s.now()
	if s.wedge > 0 && now.Sub(s.start) >= s.wedge {
		s.log.Warn("test hook " + wedgeEnv + ": the tap loop blocks for good now")
		s.n.Send("STATUS=test hook: tap loop wedged")
		select {}
	}
	if err := s.n.Watchdog(now); err != nil {
		s.log.Warn("watchdog notification failed", "err", err)
	}
}

// ready runs once reader, queue, display and control socket are up
// (kiosk.Opts.OnReady), then keeps the status line current until ctx ends.
func (s *service) ready(ctx context.Context) {
	s.readied = true
	if err := s.n.Ready(s.statusLine(ctx)); err != nil {
		s.log.Warn("ready notification failed", "err", err)
	}
	if !s.n.Enabled() {
		return
	}
	go func() {
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.n.Status(s.statusLine(ctx)); err != nil {
					s.log.Warn("status notification failed", "err", err)
				}
			}
		}
	}()
}

// provisioned: the kiosk has a link to central, from a bundle in state_dir
// or a broker set by hand (the kiosk package decides which it uses).
func (s *service) provisioned() bool {
	if s.cfg.MQTT.Broker != "" {
		return true
	}
	_, err := os.Stat(filepath.Join(s.cfg.StateDir, provisioning.BundleFile))
	return err == nil
}

// statusLine is what `systemctl status kioskd` shows a technician:
// "event evt-7781 · 3 pending · mqtt connected · reader ok · display ok",
// or "… · not provisioned (pairing code 7K3M-Q9XD) · …" before provisioning.
func (s *service) statusLine(ctx context.Context) string {
	snap := s.k.Core().Snapshot()
	ev := snap.EventID
	if ev == "" {
		ev = "none"
	}
	pending := "? pending"
	if st, err := s.k.Outbox().Stats(ctx); err == nil {
		pending = fmt.Sprintf("%d pending", st.Pending)
	}
	mqtt := "mqtt disconnected"
	switch {
	case s.k.Forwarder().Connected():
		mqtt = "mqtt connected"
	case !s.provisioned():
		mqtt = "not provisioned"
		if id := s.k.Identity(); id != nil {
			mqtt += " (pairing code " + id.PairingCode() + ")"
		}
	}
	line := fmt.Sprintf("event %s · %s · %s · reader %s · display %s", ev, pending, mqtt, snap.Reader, snap.Display)
	if snap.Indicator == "fault" {
		line += " · buzzer/LED fault"
	}
	if s.k.StorageFault() {
		line += " · QUEUE SET ASIDE: taps refused (kioskctl queue recover | queue reset -force)"
	}
	if !snap.ClockSynced {
		line += " · clock not synchronised"
	}
	return line
}
