package fleetca_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/fleetca/fleetcatest"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

const pfx = protocol.DefaultPrefix

// client is an MQTT connection that records what it receives.
type client struct {
	paho.Client
	mu   sync.Mutex
	got  map[string][]string
	last map[string]string // the answer reply consumed last, per topic
	lost chan struct{}
}

func connect(f *fleetcatest.Fleet, id string, tc *tls.Config) (*client, error) {
	c := &client{got: map[string][]string{}, last: map[string]string{}, lost: make(chan struct{})}
	var once sync.Once
	c.Client = paho.NewClient(paho.NewClientOptions().AddBroker(f.URL).SetClientID(id).SetTLSConfig(tc).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(c.lost) }) }))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", id, tok.Error())
	}
	return c, nil
}

func mustConnect(t *testing.T, f *fleetcatest.Fleet, id string, tc *tls.Config) *client {
	t.Helper()
	c, err := connect(f, id, tc)
	if err != nil {
		t.Fatalf("%v\nbroker log:\n%s", err, f.Broker.Log())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func (c *client) sub(t *testing.T, topic string) {
	t.Helper()
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		c.mu.Lock()
		c.got[m.Topic()] = append(c.got[m.Topic()], string(m.Payload()))
		c.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
}

func (c *client) pub(topic, payload string) error {
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return fmt.Errorf("publish %s: %v", topic, tok.Error())
	}
	return nil
}

func (c *client) has(topic, payload string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.got[topic] {
		if p == payload {
			return true
		}
	}
	return false
}

func (c *client) waitFor(t *testing.T, topic, payload string) {
	t.Helper()
	if !waitfor.Within(10*time.Second, func() bool { return c.has(topic, payload) }) {
		t.Fatalf("%q never arrived on %s", payload, topic)
	}
}

// A revoked kiosk is refused once the broker has reloaded (SIGHUP) the CRL
// that `ca revoke` rewrote; the other kiosks carry on, connected through
// the reload and connecting anew. The revoked kiosk's connection open
// before the reload is not cut by it (Mosquitto checks the CRL at the TLS
// handshake only): the README says to restart the broker when that
// connection must end at once.
func TestRevokedKioskRefusedAfterReload(t *testing.T) {
	f := fleetcatest.Start(t)
	devA, bA := f.Device("kiosk-rev-a1", 0)
	devB, bB := f.Device("kiosk-rev-b1", 0)
	tlsA, tlsB := f.DeviceTLS(devA, bA), f.DeviceTLS(devB, bB)
	ingest := mustConnect(t, f, "ingest", f.Service(provisioning.DefaultIngestID))
	ingest.sub(t, pfx+"/+/checkin")
	a := mustConnect(t, f, "kiosk-rev-a1", tlsA)
	b := mustConnect(t, f, "kiosk-rev-b1", tlsB)
	for i, k := range []*client{a, b} {
		id := []string{"kiosk-rev-a1", "kiosk-rev-b1"}[i]
		if err := k.pub(pfx+"/"+id+"/checkin", "before"); err != nil {
			t.Fatal(err)
		}
		ingest.waitFor(t, pfx+"/"+id+"/checkin", "before")
	}

	done, err := f.CA.Revoke("kiosk-rev-a1", "key-compromise")
	if err != nil || len(done) != 1 {
		t.Fatalf("revoke: %v %v", done, err)
	}
	// Until the broker reloads, it holds the CRL it read at start.
	if c, err := connect(f, "kiosk-rev-a1", tlsA); err != nil {
		t.Fatalf("before the reload the revoked kiosk was already refused: %v", err)
	} else {
		c.Disconnect(50)
		a = mustConnect(t, f, "kiosk-rev-a1", tlsA) // took over the session: connect again
	}

	f.Broker.Reload()
	if c, err := connect(f, "kiosk-rev-a1", tlsA); err == nil {
		c.Disconnect(50)
		t.Fatalf("the revoked kiosk connected after the reload\nbroker log:\n%s", f.Broker.Log())
	}
	// B, connected through the reload, carries on, and connects anew.
	if err := b.pub(pfx+"/kiosk-rev-b1/checkin", "after"); err != nil {
		t.Fatal(err)
	}
	ingest.waitFor(t, pfx+"/kiosk-rev-b1/checkin", "after")
	b2 := mustConnect(t, f, "kiosk-rev-b1", tlsB)
	if err := b2.pub(pfx+"/kiosk-rev-b1/checkin", "reconnected"); err != nil {
		t.Fatal(err)
	}
	ingest.waitFor(t, pfx+"/kiosk-rev-b1/checkin", "reconnected")
	// What the reload does to A's open connection: measured, and said in
	// the README. Mosquitto 2.0.11 keeps it.
	select {
	case <-a.lost:
		t.Log("the reload cut the revoked kiosk's open connection")
	case <-time.After(500 * time.Millisecond):
		t.Log("the revoked kiosk's connection open before the reload stays open")
	}

	// A restart cuts it; B comes back, A does not.
	f.Broker.Stop()
	f.Broker.Start()
	if c, err := connect(f, "kiosk-rev-a1", tlsA); err == nil {
		c.Disconnect(50)
		t.Fatal("the revoked kiosk connected after a restart")
	}
	mustConnect(t, f, "kiosk-rev-b1", tlsB)

	// Provisioned again (a new key; no -replace: its certificate is
	// revoked), the kiosk connects again.
	devA2, bA2 := f.Device("kiosk-rev-a1", 0)
	mustConnect(t, f, "kiosk-rev-a1", f.DeviceTLS(devA2, bA2))
}

// A CRL past its nextUpdate makes OpenSSL refuse every client, without a
// reload: why the CRL is long-lived and `ca list` and `ca serve` warn.
func TestExpiredCRLRefusesEveryClient(t *testing.T) {
	f := fleetcatest.Start(t)
	dev, b := f.Device("kiosk-crl-01", 0)
	tc := f.DeviceTLS(dev, b)
	mustConnect(t, f, "kiosk-crl-01", tc)
	// A CRL that expires in two seconds, read at a reload.
	der, err := f.CA.SignCRL(shortCRL(2*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.CA.Dir, fleetca.CRLFile), der, 0o644); err != nil {
		t.Fatal(err)
	}
	f.Broker.Reload()
	mustConnect(t, f, "kiosk-crl-01", tc)
	time.Sleep(3 * time.Second)
	if c, err := connect(f, "kiosk-crl-01", tc); err == nil {
		c.Disconnect(50)
		t.Fatalf("a client connected with the broker's CRL past its nextUpdate\n%s", f.Broker.Log())
	}
	// A fresh one and a reload mend it.
	if _, err := f.CA.WriteCRL(); err != nil {
		t.Fatal(err)
	}
	f.Broker.Reload()
	mustConnect(t, f, "kiosk-crl-01", tc)
}

func shortCRL(d time.Duration) *x509.RevocationList {
	now := time.Now()
	return &x509.RevocationList{Number: big.NewInt(99), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(d)}
}
