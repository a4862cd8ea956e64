package e2e

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

// Over the real broker: a config bound to another kiosk is refused, the
// kiosk's own bound one taken, an unbound one refused after it; a bundle
// of another fleet is refused by `provision apply` unless -replace-trust.
func TestProvisionedKioskConfigBoundAndTrustPinned(t *testing.T) {
	w := newTLSWorld(t)
	w.startKiosk()
	bundlePath := filepath.Join(w.state, provisioning.BundleFile)
	if err := provisioning.WriteFileAtomic(bundlePath, w.bundle(w.device, eventConfig(1, "evt-1", "")).Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	w.waitFor("provisioned", func() bool { st := w.status(); return st.MQTT == "connected" && st.ConfigSerial == 1 })

	forOther, err := w.ca.SignConfigFor(eventConfig(2, "evt-other", ""), "kiosk-other-01", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.publishConfig(forOther)
	w.waitFor("another kiosk's config rejected", func() bool { return w.status().ConfigsRejected == 1 })
	own, _ := w.ca.SignConfigFor(eventConfig(2, "evt-own", ""), w.device, time.Now())
	w.publishConfig(own)
	w.waitFor("its own bound config in force", func() bool { st := w.status(); return st.EventID == "evt-own" && st.ConfigSerial == 2 })
	unbound, _ := w.ca.SignConfigJSON(eventConfig(3, "evt-unbound", ""), time.Now())
	w.publishConfig(unbound)
	w.waitFor("the unbound config rejected", func() bool { return w.status().ConfigsRejected == 2 })
	if st := w.status(); st.EventID != "evt-own" {
		t.Fatalf("after the unbound config: %+v", st)
	}

	// A bundle of another fleet, built from the kiosk's public identity.
	other, err := provisioning.InitCA(filepath.Join(w.dir, "evil-ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := provisioning.LoadIdentity(w.state, w.device)
	csr, _ := id.CSR(rand.Reader)
	forged, err := other.Provision(provisioning.ProvisionRequest{CSR: csr, Code: id.PairingCode(), Broker: w.url, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	forgedPath := filepath.Join(w.dir, "forged.bundle")
	os.WriteFile(forgedPath, forged.Encode(), 0o644)
	kioskctl := filepath.Join(binDir, "kioskctl")
	out, err := exec.Command(kioskctl, "-socket", w.sock, "provision", "apply", "-config", w.config, forgedPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-replace-trust") {
		t.Fatalf("provision apply of another fleet's bundle: %v %s", err, out)
	}
	if st := w.status(); st.MQTT != "connected" || st.EventID != "evt-own" {
		t.Fatalf("after the refused bundle: %+v", st)
	}
	out, err = exec.Command(kioskctl, "-socket", w.sock, "provision", "apply", "-config", w.config, "-replace-trust", forgedPath).CombinedOutput()
	if err == nil { // the other fleet's broker is not this one: kioskd takes the bundle, it cannot connect
		t.Logf("apply -replace-trust: %s", out)
	}
	if !strings.Contains(string(out), "replaced") {
		t.Fatalf("apply -replace-trust: %v %s", err, out)
	}
	w.waitFor("the replacement logged", func() bool { return strings.Contains(w.kioskd.logText(), "fleet trust replaced") })
}
