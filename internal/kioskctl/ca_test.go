package kioskctl

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// kctl runs kioskctl in-process and returns its exit code and output.
func kctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, "test")
	return code, out.String(), errb.String()
}

// idFile writes what `kioskctl identity` prints for a new key of device.
func idFile(t *testing.T, dir, device string) (string, *provisioning.Identity) {
	t.Helper()
	id, err := provisioning.NewIdentity(device, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := id.CSR(rand.Reader)
	p := filepath.Join(dir, device+"-"+id.PairingCode()+".id")
	text := "device id:    " + device + "\npairing code: " + id.PairingCode() + "\n" + string(csr)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, id
}

func crlSerials(t *testing.T, caDir, file string) []string {
	t.Helper()
	ca, err := fleetca.Open(caDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := fleetca.ParseCRL(b, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, e.SerialNumber.Text(16))
	}
	slices.Sort(out)
	return out
}

func serialOfBundle(t *testing.T, path string) string {
	t.Helper()
	data, _ := os.ReadFile(path)
	b, err := provisioning.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := provisioning.ParseCertPEM([]byte(b.ClientCert))
	if err != nil {
		t.Fatal(err)
	}
	return fleetca.SerialHex(c)
}

// The CLI of item 6: provision refuses a second certificate for a device,
// even from a hand-made .id file, unless -replace, which revokes the old
// one and says so; revoke by device and by serial; the CRL lists them;
// list shows it all.
func TestCARevocationCLI(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "fleet-ca")
	if code, out, errs := kctl(t, "ca", "init", "-dir", ca); code != 0 || !strings.Contains(out, fleetca.CRLFile) {
		t.Fatalf("ca init: %d %s %s", code, out, errs)
	}
	if got := crlSerials(t, ca, filepath.Join(ca, fleetca.CRLFile)); len(got) != 0 {
		t.Fatalf("a new CA's CRL lists %v", got)
	}
	provision := func(id *provisioning.Identity, idPath, out string, extra ...string) (int, string, string) {
		return kctl(t, append([]string{"provision", "-ca", ca, "-id", idPath, "-code", id.PairingCode(),
			"-broker", "ssl://mqtt.example.org:8883", "-out", out}, extra...)...)
	}
	idA, devA := idFile(t, dir, "kiosk-cli-a1")
	if code, _, errs := provision(devA, idA, filepath.Join(dir, "a1.bundle")); code != 0 {
		t.Fatalf("provision: %d %s", code, errs)
	}
	first := serialOfBundle(t, filepath.Join(dir, "a1.bundle"))

	forgedID, forged := idFile(t, dir, "kiosk-cli-a1") // hand-made: its own key and code
	code, _, errs := provision(forged, forgedID, filepath.Join(dir, "forged.bundle"))
	if code != 1 || !strings.Contains(errs, "already has a valid certificate") || !strings.Contains(errs, first) ||
		!strings.Contains(errs, "-replace") {
		t.Fatalf("second certificate: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "forged.bundle")); err == nil {
		t.Fatal("a bundle was written for the refused provisioning")
	}

	code, out, errs := provision(devA, idA, filepath.Join(dir, "a1-new.bundle"), "-replace")
	if code != 0 || !strings.Contains(out, "revoked the old certificate "+first) || !strings.Contains(out, "systemctl reload mosquitto") {
		t.Fatalf("-replace: exit %d: %s %s", code, out, errs)
	}
	second := serialOfBundle(t, filepath.Join(dir, "a1-new.bundle"))
	if got := crlSerials(t, ca, filepath.Join(ca, fleetca.CRLFile)); !slices.Equal(got, []string{first}) {
		t.Fatalf("CRL after -replace: %v, want [%s]", got, first)
	}

	idB, devB := idFile(t, dir, "kiosk-cli-b1")
	if code, _, errs := provision(devB, idB, filepath.Join(dir, "b1.bundle")); code != 0 {
		t.Fatalf("provision b1: %s", errs)
	}
	third := serialOfBundle(t, filepath.Join(dir, "b1.bundle"))
	if code, out, errs := kctl(t, "ca", "revoke", "-dir", ca, "-reason", "key-compromise", "kiosk-cli-a1"); code != 0 ||
		!strings.Contains(out, "revoked "+second) || !strings.Contains(out, "key-compromise") {
		t.Fatalf("revoke by device: %d %s %s", code, out, errs)
	}
	if code, out, errs := kctl(t, "ca", "revoke", "-dir", ca, strings.ToUpper(third)); code != 0 || !strings.Contains(out, "revoked "+third) {
		t.Fatalf("revoke by serial: %d %s %s", code, out, errs)
	}
	want := []string{first, second, third}
	slices.Sort(want)
	if got := crlSerials(t, ca, filepath.Join(ca, fleetca.CRLFile)); !slices.Equal(got, want) {
		t.Fatalf("CRL %v, want %v", got, want)
	}
	if code, out, _ := kctl(t, "ca", "revoke", "-dir", ca, "kiosk-cli-a1"); code != 0 || !strings.Contains(out, "nothing to revoke") {
		t.Fatalf("revoke again: %d %s", code, out)
	}
	if code, _, errs := kctl(t, "ca", "revoke", "-dir", ca, "kiosk-nobody-01"); code != 1 || !strings.Contains(errs, "no such certificate") {
		t.Fatalf("revoke unknown: %d %s", code, errs)
	}
	if code, _, _ := kctl(t, "ca", "revoke", "-dir", ca, "-reason", "boredom", "kiosk-cli-b1"); code != 1 {
		t.Fatalf("unknown reason: exit %d", code)
	}
	if code, _, _ := kctl(t, "ca", "revoke", "-dir", ca); code != 2 {
		t.Fatalf("revoke without a target: exit %d", code)
	}

	code, out, errs = kctl(t, "ca", "list", "-dir", ca)
	if code != 0 || strings.Count(out, "kiosk-cli-a1") != 2 || !strings.Contains(out, "revoked") || !strings.Contains(out, "CRL number") {
		t.Fatalf("list: %d\n%s%s", code, out, errs)
	}
	code, out, _ = kctl(t, "ca", "list", "-dir", ca, "-json")
	var entries []listEntry
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 3 {
		t.Fatalf("list -json: %d %s", code, out)
	}
	for _, e := range entries {
		if e.State != fleetca.StateRevoked || e.DaysLeft < 700 || e.Role != fleetca.RoleKiosk || e.RevokedAt == nil {
			t.Errorf("entry %+v", e)
		}
	}

	// ca crl -out: the broker's copy.
	brokerCopy := filepath.Join(dir, "etc-mosquitto-crl.pem")
	if code, out, errs := kctl(t, "ca", "crl", "-dir", ca, "-out", brokerCopy, "-days", "30"); code != 0 || !strings.Contains(out, "3 revoked") {
		t.Fatalf("ca crl: %d %s %s", code, out, errs)
	}
	if got := crlSerials(t, ca, brokerCopy); !slices.Equal(got, want) {
		t.Fatalf("the copy lists %v", got)
	}
	if code, _, errs := kctl(t, "ca", "list", "-dir", ca); code != 0 || !strings.Contains(errs, "the CRL expires on") {
		t.Fatalf("a CRL of 30 days is not warned about: %d %s", code, errs)
	}
}

// Certificates issued before the inventory existed are recorded from their
// bundles or .crt files, and then count for the rule of one per device.
func TestCARecordCLI(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "fleet-ca")
	old, err := provisioning.InitCA(caDir, "", timeNow(), rand.Reader) // a CA of before: no inventory, no CRL
	if err != nil {
		t.Fatal(err)
	}
	idPath, dev := idFile(t, dir, "kiosk-old-01")
	csr, _ := os.ReadFile(idPath)
	b, err := old.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: "ssl://m.example.org:8883", Now: timeNow()})
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "old.bundle")
	os.WriteFile(bundle, b.Encode(), 0o644)
	icert, _, _ := old.IssueClient(provisioning.DefaultIngestID, 0, timeNow(), rand.Reader)
	crt := filepath.Join(dir, "ingest.crt")
	os.WriteFile(crt, icert, 0o644)
	code, out, errs := kctl(t, "ca", "record", "-dir", caDir, bundle, crt)
	if code != 0 || !strings.Contains(out, "2 certificates recorded") {
		t.Fatalf("record: %d %s %s", code, out, errs)
	}
	if code, out, _ := kctl(t, "ca", "record", "-dir", caDir, bundle); code != 0 || !strings.Contains(out, "already recorded") {
		t.Fatalf("record again: %d %s", code, out)
	}
	code, _, errs = kctl(t, "provision", "-ca", caDir, "-id", idPath, "-code", dev.PairingCode(), "-broker", "ssl://m.example.org:8883",
		"-out", filepath.Join(dir, "again.bundle"))
	if code != 1 || !strings.Contains(errs, "already has a valid certificate") {
		t.Fatalf("the recorded certificate does not count: %d %s", code, errs)
	}
	// An old CA directory has no CRL until `ca crl` writes one.
	if code, _, errs := kctl(t, "ca", "list", "-dir", caDir); code != 0 || !strings.Contains(errs, "kioskctl ca crl") {
		t.Fatalf("list without a CRL: %d %s", code, errs)
	}
	if code, out, errs := kctl(t, "ca", "crl", "-dir", caDir); code != 0 || !strings.Contains(out, "0 revoked") {
		t.Fatalf("ca crl: %d %s %s", code, out, errs)
	}
}

func timeNow() time.Time { return time.Now() }

// ca serve checks its flags and its certificate before it connects.
func TestCAServeFlags(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "fleet-ca")
	if code, _, errs := kctl(t, "ca", "init", "-dir", ca); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := kctl(t, "ca", "serve", "-dir", ca); code != 2 || !strings.Contains(errs, "-broker") {
		t.Fatalf("without -broker: %d %s", code, errs)
	}
	code, _, errs := kctl(t, "ca", "serve", "-dir", ca, "-broker", "ssl://127.0.0.1:1")
	if code != 1 || !strings.Contains(errs, "ca client-cert -dir "+ca+" -name signer.central") {
		t.Fatalf("without its certificate: %d %s", code, errs)
	}
}
