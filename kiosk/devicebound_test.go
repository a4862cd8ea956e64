package kiosk

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// provisionedKiosk is a running kiosk provisioned with a bundle of ca (a
// tcp:// broker that is never reached) whose initial event has serial 1.
func provisionedKiosk(t *testing.T, device string) (*Kiosk, *provisioning.CA, *syncBuf, context.Context) {
	t.Helper()
	dir := t.TempDir()
	cfg := provisioning.Default()
	cfg.DeviceID, cfg.StateDir, cfg.Path = device, filepath.Join(dir, "state"), "test"
	cfg.Control.Socket = filepath.Join(dir, "control.sock")
	cfg.MQTT.AllowInsecure = true
	cfg.Display.SpaarcodeEvery = -1
	logs := &syncBuf{}
	k := runUnprovisioned(t, cfg, Opts{Display: &screenLog{}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := context.Background()
	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := kioskBundle(t, k, ca, 1)
	if _, err := b.Apply(cfg.StateDir, k.Identity(), true); err != nil {
		t.Fatal(err)
	}
	if r := k.reload(ctx).(reloadReply); !r.OK || !r.Changed {
		t.Fatalf("reload: %+v", r)
	}
	return k, ca, logs, ctx
}

func kioskBundle(t *testing.T, k *Kiosk, ca *provisioning.CA, serial int) *provisioning.Bundle {
	t.Helper()
	csr, _ := k.Identity().CSR(rand.Reader)
	b, err := ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: k.Identity().PairingCode(), Broker: "tcp://127.0.0.1:1",
		AllowInsecure: true, Now: time.Now(),
		Config: []byte(`{"serial":` + string(rune('0'+serial)) + `,"eventId":"evt-b","points":1,"constraint":{"period":"DAY","volume":1}}`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signFor(t *testing.T, ca *provisioning.CA, serial int, event, device string) []byte {
	t.Helper()
	p, err := ca.SignConfigFor([]byte(`{"serial":`+string(rune('0'+serial))+`,"eventId":"`+event+
		`","points":1,"constraint":{"period":"DAY","volume":1}}`), device, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Kiosk A's config is refused by kiosk B (counted, logged), and once B has a
// config bound to it, an unbound one is refused too.
func TestConfigForAnotherDeviceRefused(t *testing.T) {
	k, ca, logs, ctx := provisionedKiosk(t, "kiosk-bound-b")
	k.applyConfig(ctx, signFor(t, ca, 2, "evt-a", "kiosk-bound-a"))
	st := k.status(ctx).(StatusReply)
	if st.ConfigsRejected != 1 || st.ConfigSerial != 1 || st.EventID != "evt-b" {
		t.Fatalf("after kiosk A's config: %+v", st)
	}
	if !strings.Contains(logs.String(), "remote config rejected") || !strings.Contains(logs.String(), "kiosk-bound-a") {
		t.Fatalf("rejection not logged:\n%s", logs)
	}
	// Its own next config is not refused for the serial A's took.
	k.applyConfig(ctx, signFor(t, ca, 2, "evt-own", "kiosk-bound-b"))
	if st := k.status(ctx).(StatusReply); st.ConfigSerial != 2 || st.EventID != "evt-own" || st.ConfigsRejected != 1 {
		t.Fatalf("own bound config: %+v", st)
	}
	k.applyConfig(ctx, signFor(t, ca, 3, "evt-unbound", ""))
	if st := k.status(ctx).(StatusReply); st.ConfigSerial != 2 || st.ConfigsRejected != 2 {
		t.Fatalf("unbound config after a bound one: %+v", st)
	}
}

// A bundle of another fleet dropped into state_dir is refused on reload
// (the link in force stays); applied with -replace-trust it is taken,
// logged, and shown once in the status warnings.
func TestDroppedBundleOfAnotherFleetRefused(t *testing.T) {
	k, _, logs, ctx := provisionedKiosk(t, "kiosk-trust-01")
	other, err := provisioning.InitCA(filepath.Join(t.TempDir(), "ca2"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := kioskBundle(t, k, other, 5)
	state := k.cfg.StateDir
	if err := provisioning.WriteFileAtomic(filepath.Join(state, provisioning.BundleFile), forged.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := k.reload(ctx).(reloadReply)
	if r.OK || r.Changed || !strings.Contains(r.Error, "another fleet trust") {
		t.Fatalf("reload of another fleet's bundle: %+v", r)
	}
	st := k.status(ctx).(StatusReply)
	if !st.Provisioned || st.ConfigSerial != 1 || !hasWarning(st.Warnings, "bundle refused") {
		t.Fatalf("after the forged bundle: %+v", st)
	}
	// On purpose (what `kioskctl provision apply -replace-trust` does).
	if _, replaced, err := forged.ApplyTrust(state, k.Identity(), true, true); err != nil || !replaced {
		t.Fatalf("ApplyTrust: %v %v", replaced, err)
	}
	if r := k.reload(ctx).(reloadReply); !r.OK || !r.Changed {
		t.Fatalf("reload after -replace-trust: %+v", r)
	}
	if !strings.Contains(logs.String(), "fleet trust replaced") {
		t.Fatalf("replacement not logged:\n%s", logs)
	}
	st = k.status(ctx).(StatusReply)
	if st.ConfigSerial != 5 || !hasWarning(st.Warnings, "fleet trust replaced") || hasWarning(st.Warnings, "bundle refused") {
		t.Fatalf("status after -replace-trust: %+v", st)
	}
	if st := k.status(ctx).(StatusReply); hasWarning(st.Warnings, "fleet trust replaced") {
		t.Fatalf("the replacement warning shown twice: %+v", st)
	}
}

func hasWarning(ws []string, s string) bool {
	for _, w := range ws {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}
