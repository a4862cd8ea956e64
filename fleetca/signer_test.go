package fleetca_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/fleetca/fleetcatest"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

func runSigner(t *testing.T, f *fleetcatest.Fleet) {
	t.Helper()
	s, err := fleetca.NewSigner(f.CA, fleetca.SignerOpts{Broker: f.URL, TLS: f.Service(provisioning.DefaultSignerID), MinInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("the signer did not subscribe\n%s", f.Broker.Log())
	}
}

func csrOf(t *testing.T, dev *provisioning.Identity) string {
	t.Helper()
	csr, err := dev.CSR(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return string(protocol.RenewRequest{CSR: string(csr)}.Encode())
}

// reply waits for the signer's answer on c's cert topic of device. A
// client subscribed twice over (its own topic and a wildcard) gets each
// answer once per subscription, so a copy of the answer consumed last is
// skipped rather than taken for the next one.
func (c *client) reply(t *testing.T, device string) protocol.RenewReply {
	t.Helper()
	topic := pfx + "/" + device + "/cert"
	var got string
	if !waitfor.Within(10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, p := range c.got[topic] {
			if p != c.last[topic] {
				got, c.last[topic] = p, p
				c.got[topic] = c.got[topic][i+1:]
				return true
			}
		}
		c.got[topic] = nil
		return false
	}) {
		t.Fatalf("no answer on %s", topic)
	}
	r, err := protocol.DecodeRenewReply([]byte(got))
	if err != nil {
		t.Fatalf("answer %q: %v", got, err)
	}
	return r
}

// The signer over a real Mosquitto with the generated ACL: a due kiosk
// gets a certificate for its key; a CSR for another key, a revoked
// device's and an unknown device's are refused; a kiosk can neither ask
// for another nor read another's answers.
func TestSignerOverBroker(t *testing.T) {
	f := fleetcatest.Start(t)
	runSigner(t, f)
	devA, bA := f.Device("kiosk-sig-a1", 20)
	devB, bB := f.Device("kiosk-sig-b1", 0)
	devR, bR := f.Device("kiosk-sig-r1", 20)
	a := mustConnect(t, f, "kiosk-sig-a1", f.DeviceTLS(devA, bA))
	b := mustConnect(t, f, "kiosk-sig-b1", f.DeviceTLS(devB, bB))
	r := mustConnect(t, f, "kiosk-sig-r1", f.DeviceTLS(devR, bR))
	a.sub(t, pfx+"/kiosk-sig-a1/cert")
	b.sub(t, pfx+"/kiosk-sig-b1/cert")
	b.sub(t, pfx+"/kiosk-sig-a1/cert") // not its own: the ACL withholds it
	b.sub(t, pfx+"/+/cert")
	r.sub(t, pfx+"/kiosk-sig-r1/cert")

	// B forges a request for A, with a key of its own: the broker drops it.
	thief, _ := provisioning.NewIdentity("kiosk-sig-a1", rand.Reader)
	if err := b.pub(pfx+"/kiosk-sig-a1/csr", csrOf(t, thief)); err != nil {
		t.Fatal(err)
	}
	// A asks with its own key.
	if err := a.pub(pfx+"/kiosk-sig-a1/csr", csrOf(t, devA)); err != nil {
		t.Fatal(err)
	}
	got := a.reply(t, "kiosk-sig-a1")
	if got.Error != "" {
		t.Fatalf("A refused: %+v", got)
	}
	cert, err := provisioning.ParseCertPEM([]byte(got.Cert))
	if err != nil || cert.Subject.CommonName != "kiosk-sig-a1" || provisioning.KeyID(cert.PublicKey) != provisioning.KeyID(devA.Public()) {
		t.Fatalf("A's certificate: %v", err)
	}
	if inv, _ := f.CA.Inventory(); inv.Serial(fleetca.SerialHex(cert)) == nil {
		t.Fatal("the renewed certificate is not in the inventory")
	}
	// Only one answer came for A (B's forged request never reached the signer).
	time.Sleep(300 * time.Millisecond)
	a.mu.Lock()
	extra := len(a.got[pfx+"/kiosk-sig-a1/cert"])
	a.mu.Unlock()
	if extra != 0 {
		t.Fatalf("%d more answers for A: the forged request was signed", extra)
	}

	// A CSR for another key than the certificate's.
	other, _ := provisioning.NewIdentity("kiosk-sig-b1", rand.Reader)
	if err := b.pub(pfx+"/kiosk-sig-b1/csr", csrOf(t, other)); err != nil {
		t.Fatal(err)
	}
	if got := b.reply(t, "kiosk-sig-b1"); got.Error != protocol.RenewKeyMismatch || got.Cert != "" {
		t.Fatalf("another key: %+v", got)
	}
	b.mu.Lock()
	for topic := range b.got {
		if topic != pfx+"/kiosk-sig-b1/cert" {
			t.Errorf("B read %s", topic)
		}
	}
	b.mu.Unlock()

	// A revoked device (still connected: the broker has not reloaded).
	if _, err := f.CA.Revoke("kiosk-sig-r1", "key-compromise"); err != nil {
		t.Fatal(err)
	}
	if err := r.pub(pfx+"/kiosk-sig-r1/csr", csrOf(t, devR)); err != nil {
		t.Fatal(err)
	}
	if got := r.reply(t, "kiosk-sig-r1"); got.Error != protocol.RenewRevoked {
		t.Fatalf("revoked: %+v", got)
	}
	// Garbage from a kiosk is answered as a bad request, and the signer
	// carries on.
	if err := r.pub(pfx+"/kiosk-sig-r1/csr", "{{{"); err != nil {
		t.Fatal(err)
	}
	if got := r.reply(t, "kiosk-sig-r1"); got.Error != protocol.RenewBadRequest {
		t.Fatalf("garbage: %+v", got)
	}
	// A CSR whose CN is another device than the topic's.
	if err := b.pub(pfx+"/kiosk-sig-b1/csr", csrOf(t, thief)); err != nil {
		t.Fatal(err)
	}
	if got := b.reply(t, "kiosk-sig-b1"); got.Error != protocol.RenewBadRequest {
		t.Fatalf("a CSR of another CN: %+v", got)
	}
}
