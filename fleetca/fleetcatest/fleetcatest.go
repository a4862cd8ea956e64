// Package fleetcatest sets up a fleet for tests: a fleet CA with its
// inventory and CRL, and a real Mosquitto with the generated TLS listener,
// fleet settings, ACL and crlfile (the CA directory's crl.pem, so a
// revocation takes effect at the broker's next reload).
package fleetcatest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// Fleet is a CA and its broker.
type Fleet struct {
	t      testing.TB
	CA     *fleetca.CA
	Broker *testbroker.Broker
	URL    string // ssl://127.0.0.1:PORT
	Roots  *x509.CertPool
	Opts   provisioning.BrokerOpts
}

// Start makes the CA in a temporary directory and starts Mosquitto with
// what `kioskctl mosquitto-config` generates (default roles). Without
// Mosquitto it skips the test (fails it under KIOSK_TEST_BROKER=mosquitto).
func Start(t testing.TB) *Fleet {
	t.Helper()
	testbroker.RequireMosquitto(t, "TLS listener, ACL file and CRL are Mosquitto's")
	dir := t.TempDir()
	now := time.Now()
	ca, err := fleetca.Init(filepath.Join(dir, "fleet-ca"), "", now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	scert, skey, _, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := provisioning.BrokerOpts{Port: "%PORT%", Bind: "127.0.0.1",
		CAFile: filepath.Join(ca.Dir, provisioning.CACertFile), CertFile: write("server.crt", scert),
		KeyFile: write("server.key", skey), ACLFile: filepath.Join(dir, "kiosk.acl"),
		CRLFile: filepath.Join(ca.Dir, fleetca.CRLFile)}
	write("kiosk.acl", []byte(o.ACL()))
	b := testbroker.StartOpts(t, testbroker.Opts{Listener: "per_listener_settings false\n" + o.Listener(), Extra: o.Fleet()})
	f := &Fleet{t: t, CA: ca, Broker: b, URL: fmt.Sprintf("ssl://127.0.0.1:%d", b.Port), Roots: x509.NewCertPool(), Opts: o}
	f.Roots.AddCert(ca.Cert)
	return f
}

// Service is a TLS configuration with a new client certificate of CN name
// (recorded in the inventory).
func (f *Fleet) Service(name string) *tls.Config {
	f.t.Helper()
	cert, key, _, err := f.CA.IssueClient(name, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		f.t.Fatal(err)
	}
	return &tls.Config{RootCAs: f.Roots, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}
}

// Device provisions a new device identity as `kioskctl provision` does
// (recorded) and returns it with its bundle.
func (f *Fleet) Device(id string, days int) (*provisioning.Identity, *provisioning.Bundle) {
	f.t.Helper()
	dev, err := provisioning.NewIdentity(id, rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	return dev, f.Provision(dev, days)
}

// Provision provisions dev (recorded; refused if it has a certificate).
func (f *Fleet) Provision(dev *provisioning.Identity, days int) *provisioning.Bundle {
	f.t.Helper()
	csr, err := dev.CSR(rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _, err := f.CA.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: f.URL, Days: days}, false)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// DeviceTLS is the TLS configuration a kiosk makes of its bundle.
func (f *Fleet) DeviceTLS(dev *provisioning.Identity, b *provisioning.Bundle) *tls.Config {
	f.t.Helper()
	l, err := b.Check(dev, false, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return l.TLS
}
