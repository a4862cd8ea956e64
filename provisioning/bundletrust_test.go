package provisioning

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/uitpas/tap-kiosk/protocol"
)

// A Config bound to another device is refused; once a bound one is in
// force an unbound one is refused, also after a restart.
func TestConfigStoreDeviceBinding(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	s := NewConfigStore(dir, pub).ForDevice("kiosk-a-01")
	if _, err := s.Offer(signed(t, key, 1, nil), t0); err != nil {
		t.Fatalf("unbound config before any bound one: %v", err)
	}
	forB := signed(t, key, 2, func(c *protocol.Config) { c.DeviceID = "kiosk-b-01" })
	if _, err := s.Offer(forB, t0); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("config for another device: %v", err)
	}
	if _, err := s.Offer(signed(t, key, 3, func(c *protocol.Config) { c.DeviceID = "kiosk-a-01" }), t0); err != nil {
		t.Fatalf("bound config: %v", err)
	}
	if _, err := s.Offer(signed(t, key, 4, nil), t0); !errors.Is(err, ErrUnbound) {
		t.Fatalf("unbound after bound: %v", err)
	}
	s2 := NewConfigStore(dir, pub).ForDevice("kiosk-a-01")
	if err := s2.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Offer(signed(t, key, 5, nil), t0); !errors.Is(err, ErrUnbound) {
		t.Fatalf("unbound after bound, after a restart: %v", err)
	}
	if c, _ := s2.Current(); c.Serial != 3 || c.DeviceID != "kiosk-a-01" {
		t.Fatalf("in force: %+v", c)
	}
	// The binding is signed: editing deviceId breaks the signature.
	edited := bytes.Replace(forB, []byte(`"deviceId":"kiosk-b-01"`), []byte(`"deviceId":"kiosk-a-01"`), 1)
	if bytes.Equal(edited, forB) {
		t.Fatal("deviceId not found in the payload")
	}
	if _, err := s2.Offer(edited, t0); !errors.Is(err, protocol.ErrBadSig) {
		t.Fatalf("deviceId edited after signing: %v", err)
	}
	// `kioskctl config sign -device` binds; a file naming another device is refused.
	f := newFleet(t, "kiosk-a-01")
	raw := []byte(`{"serial":9,"eventId":"evt-9","points":1,"constraint":{"period":"DAY","volume":1}}`)
	out, err := f.ca.SignConfigFor(raw, "kiosk-a-01", t0)
	if c, verr := protocol.VerifyConfig(out, f.ca.ConfigPublicKey()); err != nil || verr != nil || c.DeviceID != "kiosk-a-01" {
		t.Fatalf("SignConfigFor: %v %v %+v", err, verr, c)
	}
	if _, err := f.ca.SignConfigFor([]byte(`{"serial":9,"deviceId":"kiosk-b-01","eventId":"e","points":1,"constraint":{"period":"DAY","volume":1}}`),
		"kiosk-a-01", t0); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("file for another device signed for this one: %v", err)
	}
}

// A provisioned kiosk refuses a bundle with another CA or config key than
// the one in force, unless the trust is replaced on purpose.
func TestBundleTrustPinned(t *testing.T) {
	f := newFleet(t, "kiosk-a-01")
	req := ProvisionRequest{CSR: f.csr, Code: f.dev.PairingCode(), Broker: "ssl://mqtt.example.org:8883", Now: t0}
	first, err := f.ca.Provision(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Apply(f.state, f.dev, false); err != nil {
		t.Fatal(err)
	}
	prev, err := LoadTrust(f.state, f.dev)
	if err != nil || prev == nil {
		t.Fatalf("no trust pinned: %v", err)
	}
	// Re-provisioning in the same fleet (a renewal) is fine.
	again, _ := f.ca.Provision(req)
	if _, err := again.CheckTrust(f.dev, prev, false); err != nil {
		t.Fatalf("same fleet: %v", err)
	}
	if _, err := again.Apply(f.state, f.dev, false); err != nil {
		t.Fatalf("same fleet: %v", err)
	}

	// Another fleet (as built from the public .id file): refused.
	other, _ := InitCA(filepath.Join(t.TempDir(), "ca2"), "", t0, rand.Reader)
	forged, _ := other.Provision(req)
	if _, err := forged.Check(f.dev, false, nil); err != nil {
		t.Fatalf("the forged bundle is self-consistent: %v", err)
	}
	if _, err := forged.CheckTrust(f.dev, prev, false); !errors.Is(err, ErrTrustChanged) {
		t.Fatalf("another CA and key: %v", err)
	}
	keyOnly := *again
	keyOnly.ConfigKey = forged.ConfigKey
	if _, err := keyOnly.CheckTrust(f.dev, prev, false); !errors.Is(err, ErrTrustChanged) {
		t.Fatalf("another config key: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(f.state, BundleFile))
	if _, err := forged.Apply(f.state, f.dev, false); !errors.Is(err, ErrTrustChanged) {
		t.Fatalf("Apply of another fleet's bundle: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(f.state, BundleFile)); string(after) != string(before) {
		t.Fatal("a refused bundle was written")
	}
	// On purpose: accepted, and pinned.
	if _, replaced, err := forged.ApplyTrust(f.state, f.dev, false, true); err != nil || !replaced {
		t.Fatalf("-replace-trust: %v %v", replaced, err)
	}
	if _, err := first.Apply(f.state, f.dev, false); !errors.Is(err, ErrTrustChanged) {
		t.Fatalf("back to the old fleet without -replace-trust: %v", err)
	}
	// A pin for another device key (before a factory reset) does not count.
	reset, _, _ := LoadOrCreateIdentity(t.TempDir(), "kiosk-a-01", rand.Reader)
	if p, err := LoadTrust(f.state, reset); err != nil || p != nil {
		t.Fatalf("pin of another key: %+v %v", p, err)
	}
}

// A bundle whose event has the serial of the config in force, with other
// content, is refused (it would be stored and never put in force); the
// same event, or an older serial, is fine.
func TestBundleSameSerialRefused(t *testing.T) {
	f := newFleet(t, "kiosk-a-01")
	event := func(title string) []byte {
		return []byte(`{"serial":4,"eventId":"evt-4","eventTitle":"` + title + `","points":1,"constraint":{"period":"DAY","volume":1}}`)
	}
	req := ProvisionRequest{CSR: f.csr, Code: f.dev.PairingCode(), Broker: "ssl://mqtt.example.org:8883", Now: t0, Config: event("one")}
	b1, err := f.ca.Provision(req)
	if err != nil {
		t.Fatal(err)
	}
	l, err := b1.Apply(f.state, f.dev, false)
	if err != nil {
		t.Fatal(err)
	}
	s := NewConfigStore(f.state, l.ConfigKey)
	if _, err := s.Offer(l.Config, t0); err != nil { // as kioskd does
		t.Fatal(err)
	}
	if _, err := b1.Apply(f.state, f.dev, false); err != nil {
		t.Fatalf("the same bundle again: %v", err)
	}
	req.Config = event("two")
	b2, _ := f.ca.Provision(req)
	if _, err := b2.Apply(f.state, f.dev, false); !errors.Is(err, ErrSameSerial) {
		t.Fatalf("same serial, other event: %v", err)
	}
	req.Config = []byte(`{"serial":2,"eventId":"evt-2","points":1,"constraint":{"period":"DAY","volume":1}}`)
	b3, _ := f.ca.Provision(req)
	if _, err := b3.Apply(f.state, f.dev, false); err != nil {
		t.Fatalf("older serial (the newer config in force stays): %v", err)
	}
}
