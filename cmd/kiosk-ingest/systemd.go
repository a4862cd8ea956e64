package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/internal/journallog"
	"github.com/uitpas/tap-kiosk/internal/sdnotify"
)

// wedgeEnv is a test hook: KIOSK_INGEST_TEST_WEDGE=2s makes the batch
// loop's tick block for good 2 s after start, as a hung loop would. The
// notify test uses it to prove that the watchdog stops then; nothing else
// should set it.
const wedgeEnv = "KIOSK_INGEST_TEST_WEDGE"

// statusEvery paces the STATUS= line; it is sent only when it changed.
const statusEvery = 5 * time.Second

// journal reports whether w is this process's stderr and that is the
// journal: log lines then carry priorities and no time (journald adds it).
func journal(w io.Writer) bool {
	return w == io.Writer(os.Stderr) && journallog.StderrIsJournal()
}

// notifier ties kiosk-ingest to systemd (sd_notify(3)): READY=1 once
// connected and subscribed, WATCHDOG=1 only as the batches are booked
// (ingest.ServiceOpts.OnTick), STATUS= lines, STOPPING=1 on shutdown.
// Without NOTIFY_SOCKET every call is a no-op.
type notifier struct {
	n     *sdnotify.Notifier
	log   *slog.Logger
	start time.Time
	wedge time.Duration // test hook; 0: off
}

func newNotifier(log *slog.Logger) (*notifier, error) {
	n, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("no systemd watchdog", "err", err)
	}
	s := &notifier{n: n, log: log, start: time.Now()}
	if v := os.Getenv(wedgeEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, usagef("%s=%q: want a duration such as 2s", wedgeEnv, v)
		}
		s.wedge = d
	}
	return s, nil
}

// tick is the ingest's OnTick and nothing else's: the watchdog is fed only
// while the batches are booked (or none waits).
func (s *notifier) tick(now time.Time) {
	if s.wedge > 0 && now.Sub(s.start) >= s.wedge {
		s.log.Warn("test hook " + wedgeEnv + ": the batch loop blocks for good now")
		s.n.Send("STATUS=test hook: batch loop wedged")
		select {}
	}
	if err := s.n.Watchdog(now); err != nil {
		s.log.Warn("watchdog notification failed", "err", err)
	}
}

// watch sends READY=1 once svc has subscribed, keeps STATUS= current, and
// STOPPING=1 when ctx ends. The returned func waits until STOPPING=1 went
// out; call it before the process exits.
func (s *notifier) watch(ctx context.Context, svc *ingest.Service, broker string) (wait func()) {
	if !s.n.Enabled() {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if err := s.n.Stopping(); err != nil {
				s.log.Warn("stopping notification failed", "err", err)
			}
		}()
		s.n.Status("connecting to " + broker)
		select {
		case <-ctx.Done():
			return
		case <-svc.Ready():
		}
		if err := s.n.Ready(statusLine(svc, broker)); err != nil {
			s.log.Warn("ready notification failed", "err", err)
		}
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.n.Status(statusLine(svc, broker)); err != nil {
					s.log.Warn("status notification failed", "err", err)
				}
			}
		}
	}()
	return wg.Wait
}

// statusLine is what `systemctl status kiosk-ingest` shows: "subscribed at
// ssl://central:8883 · 1520 received · 1518 results · 2 dropped · 0 ledger
// errors", "DISCONNECTED from ssl://central:8883, reconnecting · …".
func statusLine(svc *ingest.Service, broker string) string {
	c := svc.Counters()
	state := "subscribed at " + broker
	if !svc.Connected() {
		state = "DISCONNECTED from " + broker + ", reconnecting"
	}
	line := fmt.Sprintf("%s · %d received · %d results · %d dropped · %d ledger errors",
		state, c.Received, c.Results, c.Dropped(), c.DBErrors)
	if c.Connects > 1 {
		line += fmt.Sprintf(" · %d reconnects", c.Connects-1)
	}
	return line
}
