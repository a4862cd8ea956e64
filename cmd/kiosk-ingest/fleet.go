package main

// The fleet registry: kept by the serving ingest (-fleet, on by default) and
// printed by `kiosk-ingest fleet`. The logic is in package fleet.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/internal/ratelog"
	"github.com/uitpas/tap-kiosk/protocol"
)

// fleetFlag declares serve's -fleet.
func fleetFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("fleet", true, "subscribe to P/+/status too and keep the fleet registry in the ledger database (see fleet -h); -fleet=false: checkins only")
}

// startFleet opens the registry and starts its feeder when on, and sets
// so.Fleet; stop, called after the service stopped, writes what is left.
func startFleet(ctx context.Context, on bool, l *ingest.Ledger, log *slog.Logger, so *ingest.ServiceOpts) (stop func(), err error) {
	if !on {
		log.Info("fleet registry off (-fleet=false): status not subscribed")
		return func() {}, nil
	}
	clk := so.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	reg, err := fleet.Open(ctx, l.DB(), l.Dialect(), fleet.Opts{Logger: log, Clock: clk})
	if err != nil {
		return nil, err
	}
	f := reg.NewFeeder(fleet.FeederOpts{})
	// Its own context: the feeder writes what the service handed it after
	// the service has stopped.
	fctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(fctx) }()
	watched := make(chan struct{})
	go func() { defer close(watched); watchUndelivered(fctx, reg, clk, log) }()
	so.Fleet = f
	return func() {
		cancel()
		<-done
		<-watched
		log.Info("fleet registry stopped", "counters", fmt.Sprintf("%+v", f.Counters()))
	}, nil
}

// fleetLine is one kiosk as `fleet -json` prints it.
type fleetLine struct {
	DeviceID        string          `json:"deviceId"`
	State           string          `json:"state"`
	Since           string          `json:"since,omitempty"`
	FirstSeen       string          `json:"firstSeen"`
	LastSeen        string          `json:"lastSeen"`
	LastCheckin     string          `json:"lastCheckin,omitempty"`
	StatusAt        string          `json:"statusAt,omitempty"`
	Pending         int             `json:"pending"`
	OldestPendingS  int64           `json:"oldestPendingS"`
	Version         string          `json:"version,omitempty"`
	EventID         string          `json:"eventId,omitempty"`
	Availability24h *float64        `json:"availability24h"`
	Alerts          []fleet.Alert   `json:"alerts"`
	Status          json.RawMessage `json:"status,omitempty"`
}

func timeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return protocol.FormatTime(t)
}

func runFleet(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		db, at, skip string
		asJSON       bool
	)
	th := fleet.DefaultThresholds()
	fs := newFlagSet(name+" fleet", stdout, `Usage:
  kiosk-ingest fleet -db FILE|postgres://… [-json] [threshold flags]

Prints the fleet registry that the serving ingest keeps (from the kiosks'
Status and last will): one line per kiosk with its state (online or offline
since when), last seen, pending checkins, version, event, availability over
the last 24 h, and its alerts. -json prints one JSON object per line with
the last Status as received. Alerts: offline, pending, cert-expiring,
clock-unsynced, reader, display, indicator, storage, configs-rejected (when
the kiosk's Status carries configsRejected), version (not the fleet's most
common one). A zero threshold turns its alert off; -skip turns off any.

Flags:
`)
	fs.StringVar(&db, "db", "", "ledger: SQLite `FILE` or postgres:// URL")
	fs.BoolVar(&asJSON, "json", false, "one JSON object per line")
	fs.DurationVar(&th.OfflineAfter, "offline-after", th.OfflineAfter, "alert offline when offline at least this `long`")
	fs.DurationVar(&th.PendingAfter, "pending-after", th.PendingAfter, "alert pending when the oldest pending checkin is at least this `old`")
	fs.IntVar(&th.CertDays, "cert-days", th.CertDays, "alert cert-expiring when the certificate expires in fewer `days`")
	fs.Int64Var(&th.ConfigsRejected, "configs-rejected", th.ConfigsRejected, "alert configs-rejected from this `many` rejected configs")
	fs.DurationVar(&th.UndeliveredAfter, "undelivered-after", th.UndeliveredAfter, "alert undelivered when an online kiosk reported pending checkins this `long` ago and none arrived since")
	fs.StringVar(&skip, "skip", "", "alerts to leave out, comma-separated `names` (e.g. version,clock-unsynced)")
	fs.StringVar(&at, "at", "", "judge the alerts as at this RFC 3339 `time` (default now)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case db == "":
		return usagef("fleet: -db is required (see fleet -h)")
	case th.OfflineAfter < 0:
		return usagef("fleet: -offline-after %v: want 0 or more", th.OfflineAfter)
	case th.PendingAfter < 0:
		return usagef("fleet: -pending-after %v: want 0 or more", th.PendingAfter)
	case th.CertDays < 0:
		return usagef("fleet: -cert-days %d: want 0 or more", th.CertDays)
	case th.ConfigsRejected < 0:
		return usagef("fleet: -configs-rejected %d: want 0 or more", th.ConfigsRejected)
	case th.UndeliveredAfter < 0:
		return usagef("fleet: -undelivered-after %v: want 0 or more", th.UndeliveredAfter)
	}
	var err error
	if th.Skip, err = fleet.ParseSkip(skip); err != nil {
		return usagef("fleet: -skip %q: want names among %s", skip, strings.Join(fleet.AlertNames(), ", "))
	}
	now := time.Now()
	if at != "" {
		if now, err = time.Parse(time.RFC3339, at); err != nil {
			return usagef("fleet: -at %q: want an RFC 3339 time such as 2026-12-01T10:00:00Z", at)
		}
	}
	if _, err := os.Stat(db); err != nil && !ingest.IsPostgres(db) {
		return usagef("fleet: -db %s: no such file", db)
	}
	l, err := ingest.Open(db, ingest.DefaultOpts())
	if err != nil {
		return err
	}
	defer l.Close()
	reg, err := fleet.Open(ctx, l.DB(), l.Dialect(), fleet.Opts{})
	if err != nil {
		return err
	}
	ds, err := reg.Devices(ctx)
	if err != nil {
		return err
	}
	fv := fleet.FleetVersion(ds)
	bw := bufio.NewWriter(stdout)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, d := range ds {
		ts, err := reg.Transitions(ctx, d.ID)
		if err != nil {
			return err
		}
		line := fleetLine{DeviceID: d.ID, State: d.State, Since: timeOrEmpty(d.Since), FirstSeen: timeOrEmpty(d.FirstSeen),
			LastSeen: timeOrEmpty(d.LastSeen), LastCheckin: timeOrEmpty(d.LastCheckin), StatusAt: timeOrEmpty(d.StatusAt),
			Pending: d.Status.Pending, OldestPendingS: d.Status.OldestPendingS, Version: d.Status.Version,
			EventID: d.Status.EventID, Alerts: fleet.DeviceAlerts(d, now, th, fv), Status: d.Raw}
		if line.Alerts == nil {
			line.Alerts = []fleet.Alert{}
		}
		if share, ok := fleet.Availability(ts, now.Add(-24*time.Hour), now); ok {
			line.Availability24h = &share
		}
		if asJSON {
			if err := enc.Encode(line); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(bw, textLine(line))
	}
	return bw.Flush()
}

func textLine(f fleetLine) string {
	var b strings.Builder
	b.WriteString(f.DeviceID + "  " + f.State)
	if f.Since != "" {
		b.WriteString(" since " + f.Since)
	}
	b.WriteString("  last seen " + f.LastSeen)
	fmt.Fprintf(&b, "  pending %d", f.Pending)
	for _, kv := range [][2]string{{"version", f.Version}, {"event", f.EventID}, {"last checkin", f.LastCheckin}} {
		if kv[1] != "" {
			b.WriteString("  " + kv[0] + " " + kv[1])
		}
	}
	if f.Availability24h != nil {
		fmt.Fprintf(&b, "  up24h %.1f%%", 100**f.Availability24h)
	}
	b.WriteString("  alerts:")
	if len(f.Alerts) == 0 {
		b.WriteString(" none")
	}
	for i, a := range f.Alerts {
		if i > 0 {
			b.WriteString(";")
		}
		b.WriteString(" " + a.Name + " (" + a.Message + ")")
	}
	return b.String()
}

// undeliveredEvery paces the check for kiosks whose checkins do not arrive.
const undeliveredEvery = 30 * time.Second

// watchUndelivered warns while online kiosks report pending checkins and
// none of theirs arrive: the ingest must not look healthy on a broker that
// accepts a shared subscription and never delivers it (NATS's and
// RabbitMQ's MQTT with -share), or behind an ACL that withholds checkins.
func watchUndelivered(ctx context.Context, reg *fleet.Registry, clk clock.Clock, log *slog.Logger) {
	th := fleet.DefaultThresholds()
	lim := ratelog.New(10 * time.Minute)
	t := clk.NewTimer(undeliveredEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		t.Reset(undeliveredEvery)
		ds, err := reg.Devices(ctx)
		if err != nil {
			continue
		}
		now := clk.Now()
		var ids []string
		pending := 0
		for _, d := range ds {
			for _, a := range fleet.DeviceAlerts(d, now, th, "") {
				if a.Name == fleet.AlertUndelivered {
					ids = append(ids, d.ID)
					pending += d.Status.Pending
				}
			}
		}
		if len(ids) > 0 {
			lim.Log(log, now, slog.LevelWarn, "undelivered",
				"kiosks report pending checkins but none of theirs arrive: is the broker delivering to this ingest? (a shared subscription, -share, is accepted and never delivered by NATS's and RabbitMQ's MQTT)",
				"kiosks", len(ids), "pending", pending, "e.g.", ids[0])
		}
	}
}
