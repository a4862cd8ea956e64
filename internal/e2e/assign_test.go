package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"

	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// TestStolenKioskCertificateBooksOnlyItsAssignment is issue 12's first
// attack, on the fleet as the README sets it up (the generated Mosquitto
// configuration and ACL over TLS, kiosk-ingest with -config-pub, configs
// pushed with the config role's certificate): with kiosk A's certificate
// one books A's assigned event, and nothing at B's event, nothing backdated
// before the assignment, nothing dated in the year 1.
func TestStolenKioskCertificateBooksOnlyItsAssignment(t *testing.T) {
	w := newTLSWorld(t)
	now := time.Now()
	write := func(name string, b []byte) string {
		p := filepath.Join(w.dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	icert, ikey, err := w.ca.IssueClient(provisioning.DefaultIngestID, 0, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(w.dir, "ledger.db")
	ingest := start(t, "kiosk-ingest", filepath.Join(w.dir, "ingest.log"), "-broker", w.url, "-db", db,
		"-tls-ca", filepath.Join(w.ca.Dir, provisioning.CACertFile), "-tls-cert", write("ingest.crt", icert),
		"-tls-key", write("ingest.key", ikey), "-config-pub", filepath.Join(w.ca.Dir, provisioning.ConfigPubFile),
		"-passholder", "04E2E0000000A1", "-log-level", "debug")
	waitfor.Cond(t, "the ingest subscribed", func() bool { return strings.Contains(ingest.logText(), "kiosk/v1/+/checkin") })

	// Central assigns A the library's event and B the sports hall's.
	for _, a := range []struct{ device, event string }{{"kiosk-a-01", "evt-bib"}, {"kiosk-b-01", "evt-sport"}} {
		signed, err := w.ca.SignConfigFor(eventConfig(1, a.event, `,"counterId":"balie"`), a.device, now)
		if err != nil {
			t.Fatal(err)
		}
		tok := w.central.Publish(protocol.Topic(protocol.DefaultPrefix, a.device, protocol.KindConfig), 1, true, signed)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	waitfor.Cond(t, "both assignments recorded", func() bool {
		return strings.Count(ingest.logText(), "assignment recorded") == 2
	})

	// The thief connects with A's certificate, as A.
	id, _, err := provisioning.LoadOrCreateIdentity(t.TempDir(), "kiosk-a-01", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := id.CSR(rand.Reader)
	bundle, err := w.ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: id.PairingCode(), Broker: w.url, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := id.TLSCertificate([]byte(bundle.ClientCert))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.ca.CertPEM)
	results := make(chan protocol.Result, 8)
	a := paho.NewClient(paho.NewClientOptions().AddBroker(w.url).SetClientID("kiosk-a-01").
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}))
	if tok := a.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer a.Disconnect(50)
	if tok := a.Subscribe(protocol.Topic(protocol.DefaultPrefix, "kiosk-a-01", protocol.KindResult), 1, func(_ paho.Client, m paho.Message) {
		if r, err := protocol.DecodeResult(m.Payload()); err == nil {
			results <- r
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	seq := int64(0)
	book := func(event string, tapped time.Time) string {
		t.Helper()
		seq++
		c := protocol.Checkin{V: 1, ID: uuid.Must(uuid.NewV7()).String(), DeviceID: "kiosk-a-01", Seq: seq,
			ChipNumber: "04E2E0000000A1", EventID: event, CounterID: "balie", TappedAt: protocol.FormatTime(tapped),
			ClockSynced: true, BootID: "boot-x", UptimeMs: 1000}
		tok := a.Publish(protocol.Topic(protocol.DefaultPrefix, "kiosk-a-01", protocol.KindCheckin), 1, false, c.Encode())
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		select {
		case r := <-results:
			if r.ID != c.ID {
				t.Fatalf("result for %s, want %s", r.ID, c.ID)
			}
			return r.Status
		case <-time.After(waitfor.Timeout):
			t.Fatalf("no result for %s tapped %s\n%s", event, c.TappedAt, tail(ingest))
			return ""
		}
	}
	for _, tc := range []struct {
		what, event string
		tapped      time.Time
		want        string
	}{
		{"B's event", "evt-sport", now, protocol.StatusEventNotFound},
		{"backdated a day, before the assignment", "evt-bib", now.Add(-24 * time.Hour), protocol.StatusCheckinNotAllowed},
		{"dated in the year 1", "evt-bib", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), protocol.StatusCheckinNotAllowed},
		{"A's own event, now", "evt-bib", now, protocol.StatusSaved},
	} {
		if got := book(tc.event, tc.tapped); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.what, got, tc.want)
		}
	}

	out, err := exec.Command(filepath.Join(binDir, "kiosk-ingest"), "assignments", "-db", db).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kiosk-a-01") || !strings.Contains(string(out), "evt-sport") {
		t.Fatalf("assignments: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir, "kiosk-ingest"), "ledger", "-db", db).CombinedOutput()
	if err != nil || strings.Count(string(out), `"status":"saved"`) != 1 || strings.Count(string(out), "\n") != 4 {
		t.Fatalf("ledger: want the 4 answers recorded once, one saved: %v\n%s", err, out)
	}
}
