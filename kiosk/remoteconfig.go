package kiosk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uitpas/tap-kiosk/device"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// openStore sets up the remote config store for l's config key and returns
// the event to put in force: the signed config in force (persisted, or the
// bundle's initial one), else fallback. Without a config key there is no
// store and remote configs are refused.
func (k *Kiosk) openStore(l *link, fallback device.Event) device.Event {
	var s *provisioning.ConfigStore
	if l.configKey != nil {
		s = provisioning.NewConfigStore(k.cfg.StateDir, l.configKey).ForDevice(k.id.DeviceID)
		if err := s.Load(); err != nil {
			k.log.Warn("persisted remote config not in force", "err", err)
		}
		if len(l.initConfig) > 0 {
			c, err := s.Offer(l.initConfig, k.o.Clock.Now())
			switch {
			case err == nil:
				k.log.Info("initial event from the provisioning bundle", "serial", c.Serial, "eventId", c.EventID)
			case errors.Is(err, provisioning.ErrUnchanged), errors.Is(err, protocol.ErrOldSerial):
			default:
				k.log.Warn("initial event of the provisioning bundle not applied", "err", err)
			}
		}
	}
	k.prov.mu.Lock()
	k.prov.store = s
	k.prov.mu.Unlock()
	if s == nil {
		return fallback
	}
	c, ok := s.Current()
	if !ok {
		return fallback
	}
	ev, err := eventFromConfig(c)
	if err != nil {
		k.log.Warn("remote config in force unusable", "serial", c.Serial, "err", err)
		return fallback
	}
	return ev
}

// onConfig receives retained config payloads from the forwarder (on paho's
// goroutine, which must not block): they are checked on runConfigs.
func (k *Kiosk) onConfig(payload []byte) {
	select {
	case k.prov.configs <- payload:
	default:
		// Retained: central's config comes again at the next connect.
		k.prov.cfgDrops.Add(1)
		k.log.Warn("remote config dropped: too many waiting", "bytes", len(payload))
	}
}

// runConfigs checks remote configs one at a time until ctx is done.
func (k *Kiosk) runConfigs(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-k.prov.configs:
			k.applyConfig(ctx, p)
		}
	}
}

// applyConfig puts a remote config in force, or rejects it (logged,
// counted) and keeps the one in force.
func (k *Kiosk) applyConfig(ctx context.Context, payload []byte) {
	k.prov.mu.Lock()
	s := k.prov.store
	k.prov.mu.Unlock()
	if s == nil {
		k.prov.rejected.Add(1)
		k.up.StatusChanged() // central sees configsRejected
		k.log.Warn("remote config rejected: no config-signing key provisioned", "bytes", len(payload))
		return
	}
	inForce, _ := s.Current()
	c, err := s.Offer(payload, k.o.Clock.Now())
	if errors.Is(err, provisioning.ErrUnchanged) {
		k.log.Debug("remote config unchanged", "serial", c.Serial)
		return
	}
	if err != nil {
		k.prov.rejected.Add(1)
		k.up.StatusChanged() // central sees configsRejected
		k.log.Warn("remote config rejected; the config in force stays", "serial", c.Serial,
			"inForce", inForce.Serial, "bytes", len(payload), "err", err)
		return
	}
	ev, err := eventFromConfig(c)
	if err == nil {
		err = k.core.SetEvent(ctx, ev)
	}
	if err != nil {
		if ctx.Err() == nil {
			k.log.Error("remote config accepted but not applied", "serial", c.Serial, "err", err)
		}
		return
	}
	k.log.Info("remote config in force", "serial", c.Serial, "eventId", c.EventID,
		"validFrom", c.ValidFrom, "validUntil", c.ValidUntil, "blockedChips", len(c.BlockedChips))
}

// eventFromConfig turns a verified Config into the core's event.
func eventFromConfig(c protocol.Config) (device.Event, error) {
	ev := device.Event{ID: c.EventID, Title: c.EventTitle, CounterID: c.CounterID, Points: c.Points,
		Period: c.Constraint.Period, Volume: c.Constraint.Volume, CheckinCode: c.CheckinCode,
		Blocked: make(map[string]bool, len(c.BlockedChips)), Serial: c.Serial}
	for _, chip := range c.BlockedChips {
		ev.Blocked[chip] = true
	}
	for _, b := range []struct {
		name string
		v    string
		t    *time.Time
	}{{"validFrom", c.ValidFrom, &ev.ValidFrom}, {"validUntil", c.ValidUntil, &ev.ValidUntil}} {
		if b.v == "" {
			continue
		}
		t, err := protocol.ParseTime(b.v)
		if err != nil {
			return ev, fmt.Errorf("kiosk: config %s: %w", b.name, err)
		}
		*b.t = t
	}
	return ev, nil
}
