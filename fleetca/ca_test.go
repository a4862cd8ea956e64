package fleetca

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	c, err := Init(filepath.Join(t.TempDir(), "fleet-ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kiosk is a device identity and its CSR.
func kiosk(t *testing.T, id string) (*provisioning.Identity, []byte) {
	t.Helper()
	dev, err := provisioning.NewIdentity(id, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := dev.CSR(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return dev, csr
}

func provision(t *testing.T, c *CA, dev *provisioning.Identity, csr []byte, replace bool) (*provisioning.Bundle, []Record, error) {
	t.Helper()
	return c.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: "ssl://mqtt.example.org:8883"}, replace)
}

func serialOf(t *testing.T, certPEM string) string {
	t.Helper()
	cert, err := provisioning.ParseCertPEM([]byte(certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return SerialHex(cert)
}

// crlSerials reads DIR/crl.pem, checks it against the CA and returns its
// serials.
func crlSerials(t *testing.T, c *CA) []string {
	t.Helper()
	crl, err := c.LoadCRL()
	if err != nil {
		t.Fatal(err)
	}
	if !crl.NextUpdate.After(time.Now().Add(300 * 24 * time.Hour)) {
		t.Errorf("CRL nextUpdate %s: not a year ahead", crl.NextUpdate)
	}
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, e.SerialNumber.Text(16))
	}
	slices.Sort(out)
	return out
}

func TestInitWritesEmptyCRLAndInventory(t *testing.T) {
	c := newCA(t)
	if got := crlSerials(t, c); len(got) != 0 {
		t.Fatalf("CRL of a new CA lists %v", got)
	}
	crl, _ := c.LoadCRL()
	if crl.Number.Cmp(big.NewInt(1)) != 0 {
		t.Errorf("first CRL number %v", crl.Number)
	}
	inv, err := c.Inventory()
	if err != nil || len(inv.Certs) != 0 {
		t.Fatalf("inventory %+v %v", inv, err)
	}
	if _, err := Init(c.Dir, "", time.Now(), rand.Reader); !errors.Is(err, provisioning.ErrCAExists) {
		t.Fatalf("second init: %v", err)
	}
}

// A device gets one certificate: a second provisioning, from a hand-made
// .id file with its own key and the pairing code that goes with it, or
// from the kiosk's own key, is refused; -replace issues one and revokes
// the old one into the CRL.
func TestSecondProvisionRefusedReplaceRevokes(t *testing.T) {
	c := newCA(t)
	dev, csr := kiosk(t, "kiosk-geel-01")
	b1, revoked, err := provision(t, c, dev, csr, false)
	if err != nil || len(revoked) != 0 {
		t.Fatalf("first provisioning: %v %v", revoked, err)
	}
	first := serialOf(t, b1.ClientCert)

	forged, forgedCSR := kiosk(t, "kiosk-geel-01") // a hand-made .id file: another key, its own code
	if _, _, err := provision(t, c, forged, forgedCSR, false); !errors.Is(err, ErrHasCertificate) {
		t.Fatalf("second certificate for the device: %v", err)
	}
	if _, _, err := provision(t, c, dev, csr, false); !errors.Is(err, ErrHasCertificate) {
		t.Fatalf("second certificate for the same key: %v", err)
	}
	inv, _ := c.Inventory()
	if len(inv.Certs) != 1 {
		t.Fatalf("refusals recorded certificates: %+v", inv.Certs)
	}

	b2, revoked, err := provision(t, c, dev, csr, true)
	if err != nil || len(revoked) != 1 || revoked[0].Serial != first || revoked[0].Reason != "superseded" {
		t.Fatalf("-replace: revoked %+v, %v", revoked, err)
	}
	second := serialOf(t, b2.ClientCert)
	if got := crlSerials(t, c); !slices.Equal(got, []string{first}) {
		t.Fatalf("CRL %v, want [%s]", got, first)
	}
	inv, _ = c.Inventory()
	live := inv.Live("kiosk-geel-01", time.Now())
	if len(live) != 1 || live[0].Serial != second || live[0].Via != ViaProvision || live[0].Role != RoleKiosk {
		t.Fatalf("live after -replace: %+v", live)
	}
	if r := inv.Serial(first); r == nil || r.State(time.Now()) != StateRevoked {
		t.Fatalf("old record: %+v", r)
	}
	// Another device is not concerned.
	other, ocsr := kiosk(t, "kiosk-geel-02")
	if _, _, err := provision(t, c, other, ocsr, false); err != nil {
		t.Fatal(err)
	}
}

func TestRevokeByDeviceAndBySerial(t *testing.T) {
	c := newCA(t)
	a, acsr := kiosk(t, "kiosk-a-01")
	b, bcsr := kiosk(t, "kiosk-b-01")
	ba, _, err := provision(t, c, a, acsr, false)
	if err != nil {
		t.Fatal(err)
	}
	bb, _, err := provision(t, c, b, bcsr, false)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := serialOf(t, ba.ClientCert), serialOf(t, bb.ClientCert)

	done, err := c.Revoke("kiosk-a-01", "key-compromise")
	if err != nil || len(done) != 1 || done[0].Serial != sa || done[0].Reason != "key-compromise" {
		t.Fatalf("revoke by device: %+v %v", done, err)
	}
	if got := crlSerials(t, c); !slices.Equal(got, []string{sa}) {
		t.Fatalf("CRL %v", got)
	}
	// By serial as openssl prints it: upper case with colons.
	colons := ""
	for i, ch := range sb {
		if i > 0 && (len(sb)-i)%2 == 0 {
			colons += ":"
		}
		colons += string(ch)
	}
	if done, err := c.Revoke("0x"+upper(colons), ""); err != nil || len(done) != 1 || done[0].Serial != sb || done[0].Reason != "unspecified" {
		t.Fatalf("revoke by serial %s: %+v %v", colons, done, err)
	}
	want := []string{sa, sb}
	slices.Sort(want)
	if got := crlSerials(t, c); !slices.Equal(got, want) {
		t.Fatalf("CRL %v, want %v", got, want)
	}
	crl, _ := c.LoadCRL()
	if crl.Number.Cmp(big.NewInt(3)) != 0 {
		t.Errorf("CRL number %v after two revocations", crl.Number)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Text(16) == sa && e.ReasonCode != 1 {
			t.Errorf("reason code %d, want keyCompromise (1)", e.ReasonCode)
		}
	}

	if _, err := c.Revoke("kiosk-a-01", ""); !errors.Is(err, ErrNoneLive) {
		t.Errorf("revoking again: %v", err)
	}
	if _, err := c.Revoke("kiosk-nobody-01", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := c.Revoke("kiosk-b-01", "because"); err == nil {
		t.Error("an unknown reason was taken")
	}
	// A device may be provisioned again once its certificate is revoked.
	if _, _, err := provision(t, c, a, acsr, false); err != nil {
		t.Fatalf("provisioning after revocation: %v", err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Service and server certificates are recorded with their role; a
// service's name is revoked like a device's.
func TestIssueClientAndServerRecorded(t *testing.T) {
	c := newCA(t)
	cert1, _, others, err := c.IssueClient(provisioning.DefaultIngestID, 0)
	if err != nil || len(others) != 0 {
		t.Fatal(others, err)
	}
	_, _, others, err = c.IssueClient(provisioning.DefaultIngestID, 0)
	if err != nil || len(others) != 1 || others[0].Serial != serialOf(t, string(cert1)) {
		t.Fatalf("second ingest certificate: others %+v, %v", others, err)
	}
	if _, _, _, err := c.IssueServer([]string{"mqtt.example.org", "10.0.0.1"}, 0); err != nil {
		t.Fatal(err)
	}
	inv, _ := c.Inventory()
	roles := map[string]int{}
	for _, r := range inv.Certs {
		roles[r.Role+" "+r.CN+" "+r.Via]++
	}
	if roles["service ingest.central client-cert"] != 2 || roles["server mqtt.example.org server-cert"] != 1 {
		t.Fatalf("inventory: %v", roles)
	}
	if done, err := c.Revoke(provisioning.DefaultIngestID, "superseded"); err != nil || len(done) != 2 {
		t.Fatalf("revoke the service: %+v %v", done, err)
	}
}

// A certificate issued before the inventory existed can be recorded, once;
// one of another CA cannot.
func TestRecordEarlierCertificates(t *testing.T) {
	c := newCA(t)
	dev, csr := kiosk(t, "kiosk-old-01")
	b, err := c.CA.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: "ssl://m.example.org:8883", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	rec, added, err := c.Record([]byte(b.ClientCert))
	if err != nil || !added || rec.Role != RoleKiosk || rec.Via != ViaRecord || rec.CN != "kiosk-old-01" {
		t.Fatalf("record: %+v %v %v", rec, added, err)
	}
	if _, added, err := c.Record([]byte(b.ClientCert)); err != nil || added {
		t.Fatalf("recorded twice: %v %v", added, err)
	}
	if _, _, err := provision(t, c, dev, csr, false); !errors.Is(err, ErrHasCertificate) {
		t.Fatalf("the recorded certificate does not count: %v", err)
	}
	other, err := provisioning.InitCA(filepath.Join(t.TempDir(), "other"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := other.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: "ssl://m.example.org:8883", Now: time.Now()})
	if _, _, err := c.Record([]byte(ob.ClientCert)); err == nil {
		t.Fatal("recorded another CA's certificate")
	}
	scert, _, _ := c.CA.IssueServer([]string{"mqtt.example.org"}, 0, time.Now(), rand.Reader)
	if rec, _, err := c.Record(scert); err != nil || rec.Role != RoleServer {
		t.Fatalf("server: %+v %v", rec, err)
	}
}

// Renewal: due → a new certificate for the same key and CN, recorded; not
// due → the current one again; revoked, unknown, another key, another CN →
// refused.
func TestRenew(t *testing.T) {
	c := newCA(t)
	dev, csrPEM := kiosk(t, "kiosk-renew-01")
	b, _, err := c.Provision(provisioning.ProvisionRequest{CSR: csrPEM, Code: dev.PairingCode(), Broker: "ssl://m.example.org:8883", Days: 20}, false)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := provisioning.ParseCSR(csrPEM)
	rn, err := c.Renew("kiosk-renew-01", csr, 0, 0)
	if err != nil || !rn.Issued || rn.Prev.Serial != serialOf(t, b.ClientCert) {
		t.Fatalf("renew: %+v %v", rn, err)
	}
	cert, _ := provisioning.ParseCertPEM(rn.Cert)
	if cert.Subject.CommonName != "kiosk-renew-01" || provisioning.KeyID(cert.PublicKey) != provisioning.KeyID(dev.Public()) ||
		cert.NotAfter.Before(time.Now().Add(700*24*time.Hour)) || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("renewed certificate: CN %s until %s", cert.Subject.CommonName, cert.NotAfter)
	}
	if err := cert.CheckSignatureFrom(c.Cert); err != nil {
		t.Fatal(err)
	}
	inv, _ := c.Inventory()
	if live := inv.Live("kiosk-renew-01", time.Now()); len(live) != 2 || live[0].Via != ViaRenewal || live[0].Serial != SerialHex(cert) {
		t.Fatalf("inventory after renewal: %+v", live)
	}
	// Asked again (the answer was lost): the same certificate, none issued.
	again, err := c.Renew("kiosk-renew-01", csr, 0, 0)
	if err != nil || again.Issued || string(again.Cert) != string(rn.Cert) {
		t.Fatalf("renew again: issued %v, %v", again.Issued, err)
	}
	if inv, _ := c.Inventory(); len(inv.Certs) != 2 {
		t.Fatalf("%d certificates recorded", len(inv.Certs))
	}

	_, otherCSR := kiosk(t, "kiosk-renew-01")
	oc, _ := provisioning.ParseCSR(otherCSR)
	if _, err := c.Renew("kiosk-renew-01", oc, 0, 0); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("another key: %v", err)
	}
	if _, err := c.Renew("kiosk-renew-02", csr, 0, 0); !errors.Is(err, provisioning.ErrWrongDevice) {
		t.Errorf("another device's topic: %v", err)
	}
	_, ucsr := kiosk(t, "kiosk-unknown-01")
	uc, _ := provisioning.ParseCSR(ucsr)
	if _, err := c.Renew("kiosk-unknown-01", uc, 0, 0); !errors.Is(err, ErrNoLiveCertificate) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := c.Revoke("kiosk-renew-01", "key-compromise"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Renew("kiosk-renew-01", csr, 0, 0); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked device: %v", err)
	}
}

// Writers in parallel (as `ca serve` and `ca revoke` in two processes) lose
// no record: each change re-reads the inventory under the lock.
func TestInventoryParallelWriters(t *testing.T) {
	c := newCA(t)
	other, err := Open(c.Dir) // another process's view
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca := c
			if i%2 == 1 {
				ca = other
			}
			if _, _, _, err := ca.IssueClient("svc.central", 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	inv, _ := c.Inventory()
	if len(inv.Certs) != 8 {
		t.Fatalf("%d records, want 8", len(inv.Certs))
	}
	if fi, err := os.Stat(filepath.Join(c.Dir, InventoryFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("inventory file: %v %v", fi.Mode(), err)
	}
}

// The signer's copy of the CA directory may lack config.key: it renews,
// and refuses to provision or sign configs.
func TestSignerCopyWithoutConfigKey(t *testing.T) {
	c := newCA(t)
	dev, csrPEM := kiosk(t, "kiosk-copy-01")
	if _, _, err := c.Provision(provisioning.ProvisionRequest{CSR: csrPEM, Code: dev.PairingCode(), Broker: "ssl://m.example.org:8883", Days: 10}, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.Dir, provisioning.ConfigKeyFile)); err != nil {
		t.Fatal(err)
	}
	cp, err := Open(c.Dir)
	if err != nil {
		t.Fatalf("open without config.key: %v", err)
	}
	csr, _ := provisioning.ParseCSR(csrPEM)
	if rn, err := cp.Renew("kiosk-copy-01", csr, 0, 0); err != nil || !rn.Issued {
		t.Fatalf("renew: %v", err)
	}
	_, other := kiosk(t, "kiosk-copy-02")
	if _, _, err := cp.Provision(provisioning.ProvisionRequest{CSR: other, Broker: "ssl://m.example.org:8883"}, false); !errors.Is(err, provisioning.ErrNoConfigKey) {
		t.Fatalf("provision: %v", err)
	}
	if _, err := cp.SignConfigJSON([]byte(`{"serial":1}`), time.Now()); !errors.Is(err, provisioning.ErrNoConfigKey) {
		t.Fatalf("sign config: %v", err)
	}
}
