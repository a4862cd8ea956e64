package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Alert names.
const (
	AlertOffline         = "offline"          // offline longer than Thresholds.OfflineAfter
	AlertPending         = "pending"          // oldest pending checkin older than Thresholds.PendingAfter
	AlertCert            = "cert-expiring"    // client certificate expires within Thresholds.CertDays
	AlertClock           = "clock-unsynced"   // the kiosk's clock is not synchronised
	AlertReader          = "reader"           // reader not ok
	AlertDisplay         = "display"          // display not ok
	AlertIndicator       = "indicator"        // buzzer/LED not ok
	AlertStorage         = "storage"          // queue set aside, taps refused
	AlertConfigsRejected = "configs-rejected" // at least Thresholds.ConfigsRejected configs rejected
	AlertVersion         = "version"          // not the fleet's most common version
	AlertUndelivered     = "undelivered"      // pending checkins reported, none arriving (Thresholds.UndeliveredAfter)
)

// AlertNames lists every alert, in the order they are reported.
func AlertNames() []string {
	return []string{AlertOffline, AlertPending, AlertCert, AlertClock, AlertReader, AlertDisplay,
		AlertIndicator, AlertStorage, AlertConfigsRejected, AlertVersion, AlertUndelivered}
}

// Thresholds decide when an alert fires. A zero threshold turns its alert
// off; Skip turns off any alert by name.
type Thresholds struct {
	OfflineAfter time.Duration
	PendingAfter time.Duration
	// CertDays: the certificate expires in fewer days than this.
	CertDays int
	// ConfigsRejected: the kiosk rejected at least this many configs
	// (Status "configsRejected", when the kiosk reports it).
	ConfigsRejected int64
	// UndeliveredAfter: an online kiosk has reported pending checkins for
	// this long and not one checkin of it has arrived since. The broker
	// accepts the kiosk's publishes but the ingest does not get them: a
	// broker that accepts shared subscriptions and never delivers them
	// (NATS's and RabbitMQ's MQTT with -share), or an ACL withholding them.
	UndeliveredAfter time.Duration
	Skip             map[string]bool
}

// DefaultThresholds: offline 10 min, oldest pending 1 h, certificate 30
// days, one rejected config, pending but undelivered 2 min.
func DefaultThresholds() Thresholds {
	return Thresholds{OfflineAfter: 10 * time.Minute, PendingAfter: time.Hour, CertDays: 21, ConfigsRejected: 1,
		UndeliveredAfter: 2 * time.Minute}
}

// Alert is one alert of one device.
type Alert struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// FleetVersion is the most common version among the devices that reported
// one ("" if none did); a tie goes to the greatest version string.
func FleetVersion(ds []Device) string {
	n := map[string]int{}
	for _, d := range ds {
		if d.Status.Version != "" {
			n[d.Status.Version]++
		}
	}
	best := ""
	for v, c := range n {
		if c > n[best] || c == n[best] && v > best {
			best = v
		}
	}
	return best
}

// Alerts computes the alerts of every device of ds (the whole fleet, whose
// FleetVersion the version alert compares with) at now. The result has one
// entry per device with at least one alert.
func Alerts(ds []Device, now time.Time, th Thresholds) map[string][]Alert {
	fv := FleetVersion(ds)
	out := map[string][]Alert{}
	for _, d := range ds {
		if as := DeviceAlerts(d, now, th, fv); len(as) > 0 {
			out[d.ID] = as
		}
	}
	return out
}

// DeviceAlerts computes the alerts of one device at now. Health alerts
// (clock, reader, display, indicator, storage) are judged only while it is
// online: an offline kiosk's last Status is old news, and the offline alert
// says what matters. Figures that age (the oldest pending checkin, the
// certificate's days) are aged from when the Status was received, since a
// kiosk republishes its Status only on a change.
func DeviceAlerts(d Device, now time.Time, th Thresholds, fleetVersion string) []Alert {
	var as []Alert
	add := func(name, format string, a ...any) {
		if !th.Skip[name] {
			as = append(as, Alert{Name: name, Message: fmt.Sprintf(format, a...)})
		}
	}
	if d.State == StateOffline && th.OfflineAfter > 0 && !d.Since.IsZero() && now.Sub(d.Since) >= th.OfflineAfter {
		add(AlertOffline, "offline for %s", Round(now.Sub(d.Since)))
	}
	if !d.HasStatus() {
		return as
	}
	s := d.Status
	aged := max(now.Sub(d.StatusReceived), 0)
	if s.Pending > 0 && th.PendingAfter > 0 {
		if age := time.Duration(s.OldestPendingS)*time.Second + aged; age >= th.PendingAfter {
			add(AlertPending, "%d pending, oldest %s", s.Pending, Round(age))
		}
	}
	if s.CertExpiresInDays != nil && th.CertDays > 0 {
		if left := *s.CertExpiresInDays - int(aged/(24*time.Hour)); left < th.CertDays {
			if left < 0 {
				add(AlertCert, "certificate expired %d days ago", -left)
			} else {
				add(AlertCert, "certificate expires in %d days", left)
			}
		}
	}
	if d.State == StateOnline && s.Pending > 0 && th.UndeliveredAfter > 0 && aged >= th.UndeliveredAfter &&
		(s.Subscribed == nil || *s.Subscribed) && d.LastCheckin.Before(d.StatusReceived) {
		add(AlertUndelivered, "%d pending reported %s ago and no checkin arrived since: is the broker delivering to the ingest?",
			s.Pending, Round(aged))
	}
	if d.State == StateOnline {
		if !s.ClockSynced {
			add(AlertClock, "clock not synchronised")
		}
		for _, h := range []struct{ name, v string }{
			{AlertReader, s.Reader}, {AlertDisplay, s.Display}, {AlertIndicator, s.Indicator}, {AlertStorage, s.Storage},
		} {
			if h.v != "" && h.v != "ok" {
				add(h.name, "%s %s", h.name, h.v)
			}
		}
	}
	if r := d.Extra.ConfigsRejected; r != nil && th.ConfigsRejected > 0 && *r >= th.ConfigsRejected {
		add(AlertConfigsRejected, "%d configs rejected", *r)
	}
	if fleetVersion != "" && s.Version != "" && s.Version != fleetVersion {
		add(AlertVersion, "version %s, fleet runs %s", s.Version, fleetVersion)
	}
	return as
}

// ParseSkip reads a comma-separated list of alert names.
func ParseSkip(list string) (map[string]bool, error) {
	skip := map[string]bool{}
	known := map[string]bool{}
	for _, n := range AlertNames() {
		known[n] = true
	}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !known[n] {
			names := AlertNames()
			sort.Strings(names)
			return nil, fmt.Errorf("fleet: alert %q (want one of %s): %w", n, strings.Join(names, ", "), ErrInvalid)
		}
		skip[n] = true
	}
	return skip, nil
}

// Round shortens d for people: seconds under an hour, minutes above.
func Round(d time.Duration) time.Duration {
	if d < time.Hour {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}
