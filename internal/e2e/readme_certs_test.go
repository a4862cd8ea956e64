package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// TestReadmeCertificates runs the ```sh blocks of the README's
// "Certificates over a kiosk's life" section on a kiosk set up by the
// walkthrough's first five blocks, with the harness of TestReadmeWalkthrough
// (what it changes is said there). One step is the test's own, not the
// README's: to make renewal due now, the kiosk is provisioned again with a
// certificate of 20 days; the README's signer then renews it over MQTT.
func TestReadmeCertificates(t *testing.T) {
	testbroker.RequireMosquitto(t, "the walkthrough installs Mosquitto's TLS listener, ACLs and CRL")
	walk := readmeBlocks(t, "## Setting up a kiosk (technicians)")
	certs := readmeBlocks(t, "## Certificates over a kiosk's life (technicians)")
	if len(walk) != 7 || len(certs) != 5 {
		t.Fatalf("the README sections have %d and %d sh blocks; this test knows 7 and 5 (update both together)", len(walk), len(certs))
	}
	h := newHarness(t)
	h.run(walk[0])
	h.run(walk[1])
	h.installPackagedConfig()
	h.run(walk[2])
	idText, err := os.ReadFile(filepath.Join(h.work, "kiosk-bib-geel-01.id"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4})`).FindSubmatch(idText)
	if m == nil {
		t.Fatalf("no pairing code:\n%s", idText)
	}
	h.code = string(m[1])
	h.run(walk[3])
	h.run(walk[4])
	h.waitFor("the kiosk connected", func() bool { return h.status().MQTT == "connected" })

	h.run(certs[0]) // the signer
	waitfor.Cond(t, "the signer answering", func() bool {
		return strings.Contains(h.signer.logText(), "answering renewal requests")
	})

	// The test's own step: a certificate due for renewal.
	h.run(`kioskctl provision -ca fleet-ca -id kiosk-bib-geel-01.id -device kiosk-bib-geel-01 -code 7K3M-Q9XD -broker ssl://mqtt.example.org:8883 -replace -days 20 -out short.bundle
sudo install -m 0644 fleet-ca/crl.pem /etc/mosquitto/certs/
sudo systemctl reload mosquitto
sudo kioskctl provision apply -config /etc/kioskd/kioskd.toml short.bundle
`)
	h.waitFor("the kiosk renewed its certificate over MQTT", func() bool {
		st := h.status()
		return st.MQTT == "connected" && st.CertExpiresInDays != nil && *st.CertExpiresInDays > 700
	})
	out, err := h.script(h.subst(certs[1])) // what happened
	if err != nil || !strings.Contains(out, `"via": "renewal"`) || !strings.Contains(out, `"reason": "superseded"`) {
		t.Fatalf("ca list after renewal: %v\n%s\nsigner:\n%s", err, out, tail(h.signer))
	}
	renewed := h.kioskCert()

	h.run(certs[2]) // rotation: -replace, the CRL to the broker
	h.run(walk[4])  // the bundle applied at the kiosk, as in step 4
	h.waitFor("the kiosk on its new certificate", func() bool {
		return h.status().MQTT == "connected" && h.kioskCert() != renewed
	})
	if h.connects(renewed) {
		t.Fatal("the rotated-out certificate still connects after the broker reloaded the CRL")
	}
	rotated := h.kioskCert()
	if !h.connects(rotated) {
		t.Fatal("the kiosk's certificate in force does not connect")
	}

	h.run(certs[3]) // revoke
	if h.connects(rotated) {
		t.Fatal("the revoked kiosk certificate connects after the broker reloaded the CRL")
	}
	if !h.connectsAs(filepath.Join(h.work, "fleet-ca/ingest.central.crt"), filepath.Join(h.work, "fleet-ca/ingest.central.key")) {
		t.Fatal("after the revocation of one kiosk the ingest's certificate is refused")
	}
	h.run(certs[4]) // a fresh CRL
	if h.connects(rotated) {
		t.Fatal("a fresh CRL forgot the revocation")
	}
}

// kioskCert is the client certificate (PEM) in the kiosk's bundle.
func (h *harness) kioskCert() string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, "var/lib/kioskd", provisioning.BundleFile))
	if err != nil {
		h.t.Fatal(err)
	}
	bundle, err := provisioning.ParseBundle(b)
	if err != nil {
		h.t.Fatal(err)
	}
	return bundle.ClientCert
}

// connects says whether a new TLS connection with the kiosk's key and
// certPEM is let in.
func (h *harness) connects(certPEM string) bool {
	h.t.Helper()
	id, err := provisioning.LoadIdentity(filepath.Join(h.root, "var/lib/kioskd"), "kiosk-bib-geel-01")
	if err != nil {
		h.t.Fatal(err)
	}
	pair, err := id.TLSCertificate([]byte(certPEM))
	if err != nil {
		h.t.Fatal(err)
	}
	return h.dial(pair, "kiosk-bib-geel-01")
}

func (h *harness) connectsAs(certFile, keyFile string) bool {
	h.t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.dial(pair, "readme-probe")
}

func (h *harness) dial(pair tls.Certificate, clientID string) bool {
	h.t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(h.work, "fleet-ca", provisioning.CACertFile))
	if err != nil {
		h.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("ssl://localhost:%d", h.broker.Port)).
		SetClientID(clientID + "-probe").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}))
	tok := c.Connect()
	ok := tok.WaitTimeout(10*time.Second) && tok.Error() == nil
	if ok {
		c.Disconnect(50)
	}
	return ok
}
