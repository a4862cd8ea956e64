package kioskctl

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// `provision apply` on a provisioned kiosk refuses a bundle of another
// fleet (as made from the public .id file with another CA), and takes it
// with -replace-trust.
func TestProvisionApplyRefusesAnotherTrust(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	cfg := filepath.Join(dir, "kioskd.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("device_id = \"kiosk-apply-01\"\nstate_dir = %q\n[control]\nsocket = %q\n",
		state, filepath.Join(dir, "none.sock"))), 0o600)
	id, _, err := provisioning.LoadOrCreateIdentity(state, "kiosk-apply-01", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := id.CSR(rand.Reader)
	bundleOf := func(name string) string {
		ca, err := provisioning.InitCA(filepath.Join(dir, name), "", time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: id.PairingCode(),
			Broker: "ssl://mqtt.example.org:8883", Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".bundle")
		os.WriteFile(p, b.Encode(), 0o644)
		return p
	}
	good, forged := bundleOf("fleet-ca"), bundleOf("evil-ca")
	var out, errb bytes.Buffer
	if code := run([]string{"provision", "apply", "-config", cfg, good}, &out, &errb, "test"); code != 0 {
		t.Fatalf("first apply: exit %d: %s", code, errb.String())
	}
	installed, _ := os.ReadFile(filepath.Join(state, provisioning.BundleFile))
	errb.Reset()
	if code := run([]string{"provision", "apply", "-config", cfg, forged}, &out, &errb, "test"); code != 1 ||
		!strings.Contains(errb.String(), "-replace-trust") {
		t.Fatalf("another fleet's bundle: exit %d: %s", code, errb.String())
	}
	if now, _ := os.ReadFile(filepath.Join(state, provisioning.BundleFile)); !bytes.Equal(now, installed) {
		t.Fatal("the refused bundle was installed")
	}
	errb.Reset()
	if code := run([]string{"provision", "apply", "-config", cfg, "-replace-trust", forged}, &out, &errb, "test"); code != 0 ||
		!strings.Contains(errb.String(), "replaced") {
		t.Fatalf("-replace-trust: exit %d: %s", code, errb.String())
	}
	want, _ := os.ReadFile(forged)
	if now, _ := os.ReadFile(filepath.Join(state, provisioning.BundleFile)); !bytes.Equal(now, want) {
		t.Fatal("-replace-trust did not install the bundle")
	}
	// The old fleet is now the other one.
	if code := run([]string{"provision", "apply", "-config", cfg, good}, &out, &errb, "test"); code != 1 {
		t.Fatalf("back without -replace-trust: exit %d", code)
	}
}

// `config sign -device D` binds the Config to D, inside the signature.
func TestConfigSignDevice(t *testing.T) {
	dir := t.TempDir()
	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev := filepath.Join(dir, "event.json")
	os.WriteFile(ev, []byte(`{"serial":2,"eventId":"evt-2","points":1,"constraint":{"period":"DAY","volume":1}}`), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"config", "sign", "-ca", ca.Dir, "-device", "kiosk-sign-01", ev}, &out, &errb, "test"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	c, err := protocol.VerifyConfig(bytes.TrimSpace(out.Bytes()), ca.ConfigPublicKey())
	if err != nil || c.DeviceID != "kiosk-sign-01" {
		t.Fatalf("signed: %+v %v", c, err)
	}
}
