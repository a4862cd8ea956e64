package fleet

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// dev is a device whose Status (received at recv) is edited by edit.
func dev(id, state string, since, recv time.Time, edit func(*protocol.Status, *Extra)) Device {
	s := protocol.Status{V: 1, Online: state == StateOnline, DeviceID: id, Version: "1.0.0", ClockSynced: true,
		Reader: "ok", Display: "ok", At: protocol.FormatTime(recv)}
	var x Extra
	if edit != nil {
		edit(&s, &x)
	}
	return Device{ID: id, State: state, Since: since, Status: s, Extra: x, Raw: json.RawMessage(s.Encode()), StatusReceived: recv}
}

func names(as []Alert) []string {
	var n []string
	for _, a := range as {
		n = append(n, a.Name)
	}
	return n
}

func days(n int) *int      { return &n }
func count(n int64) *int64 { return &n }

func TestDeviceAlerts(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	th := DefaultThresholds()
	cases := []struct {
		name string
		d    Device
		th   func(*Thresholds)
		want []string
	}{
		{"healthy", dev("k-a", StateOnline, t0, now, nil), nil, nil},
		{"offline under threshold", dev("k-a", StateOffline, now.Add(-9*time.Minute), t0, nil), nil, nil},
		{"offline over threshold", dev("k-a", StateOffline, now.Add(-10*time.Minute), t0, nil), nil, []string{AlertOffline}},
		{"offline alert off", dev("k-a", StateOffline, t0, t0, nil), func(th *Thresholds) { th.OfflineAfter = 0 }, nil},
		{"offline hides health", dev("k-a", StateOffline, now.Add(-time.Hour), t0, func(s *protocol.Status, _ *Extra) {
			s.Reader, s.ClockSynced = "fault", false
		}), nil, []string{AlertOffline}},
		{"pending aged from the Status", dev("k-a", StateOnline, t0, now.Add(-50*time.Minute), func(s *protocol.Status, _ *Extra) {
			s.Pending, s.OldestPendingS = 2, 600
		}), nil, []string{AlertPending, AlertUndelivered}},
		{"pending young", dev("k-a", StateOnline, t0, now.Add(-time.Minute), func(s *protocol.Status, _ *Extra) {
			s.Pending, s.OldestPendingS = 2, 600
		}), nil, nil},
		{"cert aged from the Status", dev("k-a", StateOnline, t0, now.Add(-48*time.Hour), func(s *protocol.Status, _ *Extra) {
			s.CertExpiresInDays = days(22)
		}), nil, []string{AlertCert}},
		{"cert fine", dev("k-a", StateOnline, t0, now, func(s *protocol.Status, _ *Extra) { s.CertExpiresInDays = days(21) }), nil, nil},
		{"health", dev("k-a", StateOnline, t0, now, func(s *protocol.Status, _ *Extra) {
			s.ClockSynced, s.Reader, s.Display, s.Indicator, s.Storage = false, "fault", "fault", "fault", "fault"
		}), nil, []string{AlertClock, AlertReader, AlertDisplay, AlertIndicator, AlertStorage}},
		{"skip", dev("k-a", StateOnline, t0, now, func(s *protocol.Status, _ *Extra) { s.ClockSynced, s.Reader = false, "fault" }),
			func(th *Thresholds) { th.Skip = map[string]bool{AlertClock: true} }, []string{AlertReader}},
		{"configs rejected", dev("k-a", StateOnline, t0, now, func(_ *protocol.Status, x *Extra) { x.ConfigsRejected = count(1) }),
			nil, []string{AlertConfigsRejected}},
		{"configs rejected none", dev("k-a", StateOnline, t0, now, func(_ *protocol.Status, x *Extra) { x.ConfigsRejected = count(0) }),
			nil, nil},
		{"version", dev("k-a", StateOnline, t0, now, func(s *protocol.Status, _ *Extra) { s.Version = "0.9.0" }), nil, []string{AlertVersion}},
		{"unknown device", Device{ID: "k-a", State: StateUnknown}, nil, nil},
		{"undelivered", dev("k-a", StateOnline, t0, now.Add(-3*time.Minute), func(s *protocol.Status, _ *Extra) { s.Pending = 4 }),
			nil, []string{AlertUndelivered}},
		{"undelivered, young", dev("k-a", StateOnline, t0, now.Add(-time.Minute), func(s *protocol.Status, _ *Extra) { s.Pending = 4 }),
			nil, nil},
		{"delivering", withCheckin(dev("k-a", StateOnline, t0, now.Add(-3*time.Minute), func(s *protocol.Status, _ *Extra) { s.Pending = 4 }),
			now.Add(-time.Minute)), nil, nil},
		{"undelivered but not subscribed (its own alert's business)", dev("k-a", StateOnline, t0, now.Add(-3*time.Minute),
			func(s *protocol.Status, _ *Extra) { f := false; s.Pending, s.Subscribed = 4, &f }), nil, nil},
	}
	for _, tc := range cases {
		th := th
		if tc.th != nil {
			tc.th(&th)
		}
		if got := names(DeviceAlerts(tc.d, now, th, "1.0.0")); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: alerts %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFleetVersionAndAlerts(t *testing.T) {
	now := t0
	ds := []Device{
		dev("k-1", StateOnline, t0, t0, func(s *protocol.Status, _ *Extra) { s.Version = "1.1.0" }),
		dev("k-2", StateOnline, t0, t0, func(s *protocol.Status, _ *Extra) { s.Version = "1.1.0" }),
		dev("k-3", StateOnline, t0, t0, func(s *protocol.Status, _ *Extra) { s.Version = "1.0.0" }),
		{ID: "k-4", State: StateUnknown},
	}
	if v := FleetVersion(ds); v != "1.1.0" {
		t.Fatalf("fleet version %q", v)
	}
	if v := FleetVersion(ds[1:3]); v != "1.1.0" {
		t.Fatalf("a tie goes to the greatest: %q", v)
	}
	got := Alerts(ds, now, DefaultThresholds())
	if len(got) != 1 || !reflect.DeepEqual(names(got["k-3"]), []string{AlertVersion}) {
		t.Fatalf("%+v", got)
	}
}

func TestParseSkip(t *testing.T) {
	if s, err := ParseSkip(" version, clock-unsynced ,"); err != nil || !s[AlertVersion] || !s[AlertClock] || len(s) != 2 {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := ParseSkip("version,bogus"); err == nil {
		t.Fatal("an unknown alert name was accepted")
	}
}

func TestAvailability(t *testing.T) {
	ts := []TransitionRecord{{At: t0, Online: true}, {At: t0.Add(time.Hour), Online: false}, {At: t0.Add(3 * time.Hour), Online: true}}
	for _, tc := range []struct {
		from, to time.Time
		want     float64
		ok       bool
	}{
		{t0.Add(-time.Hour), t0, 0, false},               // nothing known
		{t0, t0.Add(4 * time.Hour), 0.5, true},           // 1 h + 1 h of 4
		{t0.Add(-time.Hour), t0.Add(time.Hour), 1, true}, // only the known hour counts
		{t0.Add(90 * time.Minute), t0.Add(2 * time.Hour), 0, true},
	} {
		got, ok := Availability(ts, tc.from, tc.to)
		if ok != tc.ok || got != tc.want {
			t.Errorf("[%v, %v): %v %v, want %v %v", tc.from, tc.to, got, ok, tc.want, tc.ok)
		}
	}
}

func withCheckin(d Device, at time.Time) Device { d.LastCheckin = at; return d }
