package kiosk

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/fleetca/fleetcatest"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// renewKiosk is a kiosk of fleet f provisioned with a certificate of days
// days, running on clk.
func renewKiosk(t *testing.T, f *fleetcatest.Fleet, device string, days int, clk *clock.Fake) (*Kiosk, *syncBuf) {
	t.Helper()
	dir := t.TempDir()
	cfg := provisioning.Default()
	cfg.DeviceID, cfg.StateDir, cfg.Path = device, filepath.Join(dir, "state"), "test"
	cfg.Control.Socket = filepath.Join(dir, "control.sock")
	cfg.Display.SpaarcodeEvery = -1
	logs := &syncBuf{}
	k, err := New(cfg, Opts{Display: &screenLog{}, Clock: clk, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	k.renew.offline = 50 * time.Millisecond // before Run reads it
	runUntilCleanup(t, k)
	ctx := context.Background()
	// As `kioskctl provision apply` does.
	if _, err := f.Provision(k.Identity(), days).Apply(cfg.StateDir, k.Identity(), false); err != nil {
		t.Fatal(err)
	}
	if r := k.reload(ctx).(reloadReply); !r.OK || !r.Changed {
		t.Fatalf("reload: %+v", r)
	}
	return k, logs
}

func startSigner(t *testing.T, f *fleetcatest.Fleet) *fleetca.Signer {
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
	return s
}

func (k *Kiosk) linkCert() (serial string, until time.Time) {
	k.prov.mu.Lock()
	defer k.prov.mu.Unlock()
	return k.prov.link.clientCert.SerialNumber.Text(16), k.prov.link.clientCert.NotAfter
}

func (k *Kiosk) dropped() int {
	k.renew.mu.Lock()
	defer k.renew.mu.Unlock()
	return k.renew.dropped
}

func (k *Kiosk) asked() int {
	k.renew.mu.Lock()
	defer k.renew.mu.Unlock()
	return k.renew.asked
}

// A kiosk whose certificate expires within 30 days renews it through a
// real Mosquitto (TLS, the generated ACL) and `ca serve`: unanswered (the
// signer is not running yet), it asks again with backoff on its clock;
// answered, it writes the bundle, reconnects with the new certificate (its
// old one then revoked and the broker restarted, it still connects), and
// the inventory lists the new one.
func TestRenewalThroughBroker(t *testing.T) {
	f := fleetcatest.Start(t)
	clk := clock.NewFake(time.Now())
	k, logs := renewKiosk(t, f, "kiosk-renew-01", 20, clk)
	oldSerial, oldUntil := k.linkCert()
	waitFor(t, "connected", func() bool { return k.Forwarder().Connected() })
	waitFor(t, "the first request", func() bool { return k.asked() == 1 })
	// Nobody answers: the next request waits for the backoff (an hour or so).
	clk.Advance(30 * time.Minute)
	time.Sleep(200 * time.Millisecond)
	if n := k.asked(); n != 1 {
		t.Fatalf("%d requests within half an hour", n)
	}
	clk.Advance(2 * time.Hour) // the backoff is 45 to 75 minutes, counted from the request
	waitFor(t, "the second request, after the backoff", func() bool { return k.asked() == 2 })

	startSigner(t, f)
	clk.Advance(3 * time.Hour)
	waitFor(t, "the renewed certificate in force", func() bool {
		s, _ := k.linkCert()
		return s != oldSerial
	})
	newSerial, newUntil := k.linkCert()
	if !newUntil.After(oldUntil.Add(600 * 24 * time.Hour)) {
		t.Fatalf("renewed until %s, the old one until %s", newUntil, oldUntil)
	}
	waitFor(t, "connected with the new certificate", func() bool { return k.Forwarder().Connected() })
	if !strings.Contains(logs.String(), "certificate renewed") {
		t.Fatalf("no log line of the renewal:\n%s", logs)
	}
	b, err := provisioning.LoadBundle(k.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := provisioning.ParseCertPEM([]byte(b.ClientCert)); c == nil || c.SerialNumber.Text(16) != newSerial {
		t.Fatal("the bundle on disk is not the renewed one")
	}
	if d := k.statusPayload().CertExpiresInDays; d == nil || *d < 700 {
		t.Fatalf("certExpiresInDays %v", d)
	}
	if st := k.status(context.Background()).(StatusReply); len(st.Warnings) != 0 {
		t.Fatalf("warnings after the renewal: %q", st.Warnings)
	}
	inv, err := f.CA.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	rec := inv.Serial(newSerial)
	if rec == nil || rec.Via != fleetca.ViaRenewal || rec.CN != "kiosk-renew-01" || rec.State(time.Now()) != fleetca.StateValid {
		t.Fatalf("inventory record of the renewed certificate: %+v", rec)
	}
	// It is the new certificate the kiosk connects with: the old one
	// revoked and the broker restarted, the kiosk is back.
	if _, err := f.CA.Revoke(oldSerial, "superseded"); err != nil {
		t.Fatal(err)
	}
	f.Broker.Stop()
	f.Broker.Start()
	waitFor(t, "reconnected after the restart, with the old certificate revoked", func() bool { return k.Forwarder().Connected() })
	asked := k.asked()
	clk.Advance(48 * time.Hour)
	time.Sleep(200 * time.Millisecond)
	if k.asked() != asked {
		t.Fatal("asked again with a certificate not due")
	}
}

// What arrives on P/D/cert and is not a certificate for this kiosk from
// its CA is dropped with a log line; the kiosk carries on with its own.
func TestRenewalRefusesGarbageAndForeignCertificates(t *testing.T) {
	f := fleetcatest.Start(t)
	clk := clock.NewFake(time.Now())
	k, logs := renewKiosk(t, f, "kiosk-renew-02", 20, clk)
	serial, _ := k.linkCert()
	waitFor(t, "connected", func() bool { return k.Forwarder().Connected() })
	waitFor(t, "the request", func() bool { return k.asked() == 1 })

	signer := paho.NewClient(paho.NewClientOptions().AddBroker(f.URL).SetClientID(provisioning.DefaultSignerID).
		SetTLSConfig(f.Service(provisioning.DefaultSignerID)))
	if tok := signer.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer signer.Disconnect(50)
	send := func(payload []byte) {
		t.Helper()
		tok := signer.Publish(protocol.Topic(protocol.DefaultPrefix, "kiosk-renew-02", protocol.KindCert), 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// Garbage.
	send([]byte("\x00\xffnot json at all"))
	waitFor(t, "the garbage logged", func() bool { return strings.Contains(logs.String(), "bad reply on the cert topic dropped") })
	// A certificate of another CA for the same key and CN.
	other, err := fleetca.Init(filepath.Join(t.TempDir(), "other-ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := k.Identity().CSR(rand.Reader)
	pc, _ := provisioning.ParseCSR(csr)
	foreign, err := other.SignDeviceCSR(pc, 0, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	send(protocol.RenewReply{Cert: string(foreign)}.Encode())
	waitFor(t, "the foreign certificate refused", func() bool {
		return strings.Contains(logs.String(), "the certificate received is refused")
	})
	// A certificate of the fleet CA for another key (another kiosk's).
	otherDev, _ := provisioning.NewIdentity("kiosk-renew-02", rand.Reader)
	ocsr, _ := otherDev.CSR(rand.Reader)
	opc, _ := provisioning.ParseCSR(ocsr)
	wrongKey, _ := f.CA.SignDeviceCSR(opc, 0, time.Now(), rand.Reader)
	send(protocol.RenewReply{Cert: string(wrongKey)}.Encode())
	waitFor(t, "another key's certificate refused", func() bool { return k.dropped() == 3 })
	// A refusal from the signer is logged and shown.
	send(protocol.RenewReply{Error: protocol.RenewRevoked, Message: "revoked"}.Encode())
	waitFor(t, "the refusal logged", func() bool { return strings.Contains(logs.String(), "certificate renewal refused by central") })
	st := k.status(context.Background()).(StatusReply)
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "last refused: revoked") {
		t.Fatalf("status warnings %q", st.Warnings)
	}
	if s, _ := k.linkCert(); s != serial || !k.Forwarder().Connected() {
		t.Fatalf("after the bad replies: serial %s (was %s), connected %v", s, serial, k.Forwarder().Connected())
	}
}
