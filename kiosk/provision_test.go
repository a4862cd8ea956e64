package kiosk

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// screenLog records the screens a kiosk shows.
type screenLog struct {
	mu  sync.Mutex
	all []display.Screen
}

func (s *screenLog) Show(sc display.Screen) { s.mu.Lock(); s.all = append(s.all, sc); s.mu.Unlock() }
func (s *screenLog) Halt() error            { return nil }
func (s *screenLog) String() string         { return "screenlog" }

func (s *screenLog) last() display.Screen {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return display.Screen{}
	}
	return s.all[len(s.all)-1]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.Cond(t, what, cond)
}

// runUnprovisioned starts a kiosk that has no bundle yet and stops it at
// cleanup. It does not wait for OnReady, as runKiosk does: a kiosk without
// a bundle is never ready.
func runUnprovisioned(t *testing.T, cfg provisioning.Config, o Opts) *Kiosk {
	t.Helper()
	k, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, k)
	return k
}

// runUntilCleanup runs k until t's cleanup, which checks Run's error.
func runUntilCleanup(t *testing.T, k *Kiosk) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestUnprovisionedShowsPairingCodeUntilBundle(t *testing.T) {
	dir := t.TempDir()
	cfg := provisioning.Default()
	cfg.DeviceID, cfg.StateDir, cfg.Path = "kiosk-prov-01", filepath.Join(dir, "state"), "test"
	cfg.Control.Socket = filepath.Join(dir, "control.sock")
	cfg.MQTT.AllowInsecure = true   // the bundle below names a tcp:// broker
	cfg.Display.SpaarcodeEvery = -1 // no idle ⇄ spaarcode alternation
	if err := cfg.Validate(); err != nil {
		t.Fatal(err) // no mqtt.broker is valid: the bundle brings it
	}
	screens := &screenLog{}
	k := runUnprovisioned(t, cfg, Opts{Display: screens})
	ctx := context.Background()
	code := k.Identity().PairingCode()
	waitUntil(t, "the provisioning screen", func() bool {
		s := screens.last()
		return s.Kind == display.Provisioning && s.DeviceID == "kiosk-prov-01" && s.Code == code
	})
	if fi, err := os.Stat(filepath.Join(cfg.StateDir, provisioning.IdentityFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi.Mode(), err)
	}
	if f := k.Forwarder(); f == nil || f.Connected() {
		t.Fatal("an unprovisioned kiosk has no idle forwarder, or it connected")
	}
	if st := k.status(ctx).(StatusReply); st.Provisioned || st.PairingCode != code {
		t.Fatalf("status: %+v", st)
	}

	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := k.Identity().CSR(rand.Reader)
	b, err := ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: code, Broker: "tcp://127.0.0.1:1",
		AllowInsecure: true, Now: time.Now(), Days: 20, // under 30 days: a warning
		Config: []byte(`{"serial":3,"eventId":"evt-b","points":1,"constraint":{"period":"DAY","volume":1},"checkinCode":"QR123"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(cfg.StateDir, k.Identity(), true); err != nil {
		t.Fatal(err)
	}
	r := k.reload(ctx).(reloadReply)
	if !r.OK || !r.Provisioned || !r.Changed {
		t.Fatalf("reload: %+v", r)
	}
	waitUntil(t, "the bundle's event on screen", func() bool {
		s := screens.last()
		return s.Kind == display.Idle && s.Code == "QR123"
	})
	st := k.status(ctx).(StatusReply)
	if !st.Provisioned || st.ConfigSerial != 3 || st.EventID != "evt-b" || st.CertExpiresInDays == nil {
		t.Fatalf("status after the bundle: %+v", st)
	}
	if d := *st.CertExpiresInDays; d < 18 || d > 20 || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "expires in") {
		t.Fatalf("certificate expiry in status: %d days, warnings %q", d, st.Warnings)
	}
	if p := k.statusPayload(); p.CertExpiresInDays == nil || *p.CertExpiresInDays != *st.CertExpiresInDays {
		t.Fatal("the retained Status lacks certExpiresInDays")
	}
	if r := k.reload(ctx).(reloadReply); !r.OK || r.Changed {
		t.Fatalf("second reload of the same bundle: %+v", r)
	}
	if k.Forwarder() == k.idleFwd {
		t.Fatal("still the idle forwarder")
	}
}

// TestUnprovisionedPollsForBundle: without a link the kiosk looks for a
// bundle every bundlePoll by itself (no reload op) and connects with the
// one it finds.
func TestUnprovisionedPollsForBundle(t *testing.T) {
	dir := t.TempDir()
	cfg := provisioning.Default()
	cfg.DeviceID, cfg.StateDir, cfg.Path = "kiosk-prov-02", filepath.Join(dir, "state"), "test"
	cfg.MQTT.AllowInsecure = true
	cfg.Display.SpaarcodeEvery = -1
	clk := clock.NewFake(time.Now())
	screens := &screenLog{}
	k := runUnprovisioned(t, cfg, Opts{Display: screens, Clock: clk})
	ctx := context.Background()
	code := k.Identity().PairingCode()
	waitUntil(t, "the provisioning screen", func() bool { return screens.last().Kind == display.Provisioning })
	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := k.Identity().CSR(rand.Reader)
	b, err := ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: code, Broker: "tcp://127.0.0.1:1",
		AllowInsecure: true, Now: time.Now(), Days: 365,
		Config: []byte(`{"serial":3,"eventId":"evt-p","points":1,"constraint":{"period":"DAY","volume":1},"checkinCode":"QR456"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(cfg.StateDir, k.Identity(), true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the bundle found by the poll", func() bool {
		clk.Advance(bundlePoll)
		s := screens.last()
		return s.Kind == display.Idle && s.Code == "QR456" && k.Forwarder() != k.idleFwd
	})
	if st := k.status(ctx).(StatusReply); !st.Provisioned || st.ConfigSerial != 3 {
		t.Fatalf("status after the poll: %+v", st)
	}
}
