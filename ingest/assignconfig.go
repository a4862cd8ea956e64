package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/protocol"
)

// subscribeConfigs subscribes P/+/config (never shared: every instance
// records every assignment, idempotently) in the persistent session, so that
// a Config pushed while the service was away is queued in order with the
// checkins sent after it, and recorded before they are booked.
func (s *Service) subscribeConfigs(c mqtt.Client) {
	s.subscribeAll(c, protocol.KindConfig, s.onConfig, ": no assignments are learnt (the ingest role reads configs)")
}

// onConfig runs on paho's router goroutine and records the Config as an
// assignment before it returns: a checkin that arrives after it is only
// queued once this is done. A Config that does not verify is refused (and
// acknowledged: it will not verify next time either); one the ledger could
// not record is left unacknowledged, so the broker delivers it again with
// the next session.
func (s *Service) onConfig(_ mqtt.Client, m mqtt.Message) {
	if s.o.ConfigKey == nil || len(m.Payload()) == 0 { // an empty payload clears a retained config
		m.Ack()
		return
	}
	s.c.configsReceived.Add(1)
	now := s.o.Clock.Now()
	device, kind, err := protocol.ParseTopic(s.o.Prefix, m.Topic())
	if err == nil && kind != protocol.KindConfig {
		err = fmt.Errorf("ingest: topic kind %q: %w", kind, protocol.ErrBadTopic)
	}
	var a Assignment
	if err == nil {
		a, err = AssignmentOf(m.Payload(), device, s.o.ConfigKey, now)
	}
	if err != nil {
		s.c.configsRefused.Add(1)
		s.drops.Log(s.o.Logger, now, slog.LevelWarn, "config", "config not recorded as an assignment", "topic", m.Topic(), "bytes", len(m.Payload()), "err", err)
		m.Ack()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	added, err := s.l.Assign(ctx, a)
	if err != nil && !errors.Is(err, ErrInvalid) {
		s.log.Error("assignment not recorded; the broker delivers it again with the next session", "device", device, "serial", a.Serial, "err", err)
		return
	}
	if err != nil {
		s.c.configsRefused.Add(1)
		s.log.Warn("config not recorded as an assignment", "device", device, "serial", a.Serial, "err", err)
	} else if added {
		s.c.configsRecorded.Add(1)
		s.log.Info("assignment recorded", "device", device, "serial", a.Serial, "event", a.Event.ID,
			"points", a.Event.Points, "constraint", fmt.Sprintf("%d/%s", a.Event.Volume, a.Event.Period),
			"issuedAt", protocol.FormatTime(a.AssignedAt))
	}
	m.Ack()
}
