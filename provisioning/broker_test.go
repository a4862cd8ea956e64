package provisioning_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// fleetBroker is a real Mosquitto configured by BrokerOpts, a fleet CA, and
// TLS configurations for devices and the ingest.
type fleetBroker struct {
	t       *testing.T
	broker  *testbroker.Broker
	ca      *provisioning.CA
	url     string
	ingest  *tls.Config
	monitor *tls.Config
	config  *tls.Config // the config publisher's (role config)
	roots   *x509.CertPool
}

func startFleetBroker(t *testing.T) *fleetBroker {
	t.Helper()
	testbroker.RequireMosquitto(t, "the TLS/ACL tests need its TLS listener and ACL file")
	dir := t.TempDir()
	now := time.Now()
	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", now, rand.Reader)
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
	scert, skey, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, 0, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	o := provisioning.BrokerOpts{Port: "%PORT%", Bind: "127.0.0.1",
		CAFile: filepath.Join(ca.Dir, provisioning.CACertFile), CertFile: write("server.crt", scert),
		KeyFile: write("server.key", skey), ACLFile: filepath.Join(dir, "kiosk.acl")}
	write("kiosk.acl", []byte(o.ACL()))
	// testbroker writes persistence_location and the log itself.
	b := testbroker.StartOpts(t, testbroker.Opts{Listener: "per_listener_settings false\n" + o.Listener(), Extra: o.Fleet()})
	f := &fleetBroker{t: t, broker: b, ca: ca, url: fmt.Sprintf("ssl://127.0.0.1:%d", b.Port), roots: x509.NewCertPool()}
	f.roots.AppendCertsFromPEM(ca.CertPEM)
	icert, ikey, err := ca.IssueClient(provisioning.DefaultIngestID, 0, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(icert, ikey)
	if err != nil {
		t.Fatal(err)
	}
	f.ingest = &tls.Config{RootCAs: f.roots, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}
	f.monitor = f.service(provisioning.DefaultMonitorID)
	f.config = f.service(provisioning.DefaultConfigID)
	return f
}

// service is a TLS config with a client certificate of CN name.
func (f *fleetBroker) service(name string) *tls.Config {
	f.t.Helper()
	cert, key, err := f.ca.IssueClient(name, 0, time.Now(), rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		f.t.Fatal(err)
	}
	return &tls.Config{RootCAs: f.roots, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}
}

// device provisions a device as kioskctl does and returns its TLS config.
func (f *fleetBroker) device(id string) *tls.Config {
	f.t.Helper()
	dev, err := provisioning.NewIdentity(id, rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	csr, _ := dev.CSR(rand.Reader)
	bundle, err := f.ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: f.url, Now: time.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := bundle.Check(dev, false, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return l.TLS
}

// client is an MQTT connection that records what it receives.
type client struct {
	paho.Client
	mu   sync.Mutex
	got  map[string][]string // topic → payloads
	news chan struct{}
	lost chan struct{}
}

func (f *fleetBroker) connect(clientID string, tc *tls.Config) (*client, error) {
	c := &client{got: map[string][]string{}, news: make(chan struct{}, 1000), lost: make(chan struct{})}
	o := paho.NewClientOptions().AddBroker(f.url).SetClientID(clientID).SetTLSConfig(tc).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { close(c.lost) })
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", clientID, tok.Error())
	}
	f.t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

func (f *fleetBroker) mustConnect(clientID string, tc *tls.Config) *client {
	f.t.Helper()
	c, err := f.connect(clientID, tc)
	if err != nil {
		f.t.Fatalf("%v\nbroker log:\n%s", err, f.broker.Log())
	}
	return c
}

func (c *client) sub(t *testing.T, topic string) {
	t.Helper()
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		c.mu.Lock()
		c.got[m.Topic()] = append(c.got[m.Topic()], string(m.Payload()))
		c.mu.Unlock()
		c.news <- struct{}{}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
}

func (c *client) pub(t *testing.T, topic, payload string, retained bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// waitFor waits until topic has received payload; it returns everything
// received on every topic by then.
func (c *client) waitFor(t *testing.T, topic, payload string) map[string][]string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, p := range c.got[topic] {
			if p == payload {
				out := map[string][]string{}
				for k, v := range c.got {
					out[k] = append([]string(nil), v...)
				}
				c.mu.Unlock()
				return out
			}
		}
		c.mu.Unlock()
		select {
		case <-c.news:
		case <-deadline:
			t.Fatalf("%q never arrived on %s", payload, topic)
		}
	}
}

const pfx = protocol.DefaultPrefix

func TestBrokerTLSAndACL(t *testing.T) {
	f := startFleetBroker(t)
	tlsA, tlsB := f.device("kiosk-a-01"), f.device("kiosk-b-01")
	ingest := f.mustConnect("kiosk-ingest", f.ingest)
	ingest.sub(t, "$share/ingest/"+pfx+"/+/checkin")
	cfg := f.mustConnect(provisioning.DefaultConfigID, f.config) // configs come from the config role
	a := f.mustConnect("kiosk-a-01", tlsA)
	b := f.mustConnect("kiosk-b-01", tlsB)
	a.sub(t, pfx+"/kiosk-a-01/result")
	a.sub(t, pfx+"/kiosk-a-01/config")
	b.sub(t, pfx+"/kiosk-b-01/result")

	t.Run("A publishes its checkins and receives its results and config", func(t *testing.T) {
		a.pub(t, pfx+"/kiosk-a-01/checkin", "checkin-a-1", false)
		ingest.waitFor(t, pfx+"/kiosk-a-01/checkin", "checkin-a-1")
		ingest.pub(t, pfx+"/kiosk-a-01/result", "result-a-1", false)
		a.waitFor(t, pfx+"/kiosk-a-01/result", "result-a-1")
		cfg.pub(t, pfx+"/kiosk-a-01/config", "config-a-1", true)
		a.waitFor(t, pfx+"/kiosk-a-01/config", "config-a-1")
		a.pub(t, pfx+"/kiosk-a-01/status", "status-a", true)
	})

	t.Run("A cannot publish on B's topics nor write configs", func(t *testing.T) {
		a.pub(t, pfx+"/kiosk-b-01/checkin", "forged-by-a", false) // QoS 1 is acknowledged, then dropped
		a.pub(t, pfx+"/kiosk-b-01/result", "forged-result", false)
		a.pub(t, pfx+"/kiosk-a-01/config", "self-made-config", true)
		a.pub(t, pfx+"/kiosk-a-01/checkin", "barrier-1", false) // same connection: processed after the above
		got := ingest.waitFor(t, pfx+"/kiosk-a-01/checkin", "barrier-1")
		if len(got[pfx+"/kiosk-b-01/checkin"]) != 0 {
			t.Fatalf("A's checkin on B's topic reached the ingest: %v", got)
		}
		if got := b.snapshot(); len(got[pfx+"/kiosk-b-01/result"]) != 0 {
			t.Fatalf("A wrote B's results: %v", got)
		}
		// A fresh look at A's retained config shows central's, not A's.
		a2 := f.mustConnect("kiosk-a-01", tlsA) // replaces A's connection: same identity
		a2.sub(t, pfx+"/kiosk-a-01/config")
		a2.waitFor(t, pfx+"/kiosk-a-01/config", "config-a-1")
		if got := a2.snapshot()[pfx+"/kiosk-a-01/config"]; len(got) != 1 {
			t.Fatalf("retained config of A: %v", got)
		}
	})

	t.Run("A cannot read B's results or config, even by wildcard", func(t *testing.T) {
		a3 := f.mustConnect("kiosk-a-01", tlsA)
		tok := a3.Subscribe(pfx+"/kiosk-b-01/result", 1, nil)
		tok.WaitTimeout(5 * time.Second)
		a3.sub(t, pfx+"/+/result")
		a3.sub(t, pfx+"/#")
		cfg.pub(t, pfx+"/kiosk-b-01/config", "config-b", true)
		ingest.pub(t, pfx+"/kiosk-b-01/result", "result-b", false)
		b.waitFor(t, pfx+"/kiosk-b-01/result", "result-b")
		ingest.pub(t, pfx+"/kiosk-a-01/result", "barrier-2", false) // after B's, from the same sender
		got := a3.waitFor(t, pfx+"/kiosk-a-01/result", "barrier-2")
		for topic := range got {
			if strings.Contains(topic, "kiosk-b-01") {
				t.Fatalf("A read %s: %v", topic, got)
			}
		}
	})

	t.Run("A cannot take over B's session with B's client id", func(t *testing.T) {
		f.mustConnect("kiosk-b-01", tlsA) // the broker makes the client id A's CN
		ingest.pub(t, pfx+"/kiosk-b-01/result", "result-b-2", false)
		b.waitFor(t, pfx+"/kiosk-b-01/result", "result-b-2")
		select {
		case <-b.lost:
			t.Fatal("B was disconnected")
		default:
		}
	})

	t.Run("no certificate, or one of another CA, cannot connect", func(t *testing.T) {
		bare := &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1"}
		if _, err := f.connect("kiosk-c-01", bare); err == nil {
			t.Fatal("connected without a client certificate")
		}
		other, err := provisioning.InitCA(filepath.Join(t.TempDir(), "other"), "", time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		dev, _ := provisioning.NewIdentity("kiosk-a-01", rand.Reader)
		csr, _ := dev.CSR(rand.Reader)
		bundle, err := other.Provision(provisioning.ProvisionRequest{CSR: csr, Code: dev.PairingCode(), Broker: f.url, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		tc, _ := dev.TLSCertificate([]byte(bundle.ClientCert))
		forged := &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{tc}}
		if _, err := f.connect("kiosk-a-01", forged); err == nil {
			t.Fatal("connected with a certificate of another CA")
		}
		// And the kiosk does not talk to a broker the fleet CA did not certify.
		wrongRoots := x509.NewCertPool()
		wrongRoots.AppendCertsFromPEM(other.CertPEM)
		impostor := tlsA.Clone()
		impostor.RootCAs = wrongRoots
		if _, err := f.connect("kiosk-a-01", impostor); err == nil {
			t.Fatal("device accepted a broker certificate of another CA")
		}
	})
}

func (c *client) snapshot() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]string{}
	for k, v := range c.got {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// The monitor role reads every kiosk's Status and nothing else; the ingest
// role reads Status too.
func TestBrokerMonitorRole(t *testing.T) {
	f := startFleetBroker(t)
	a := f.mustConnect("kiosk-a-01", f.device("kiosk-a-01"))
	mon := f.mustConnect(provisioning.DefaultMonitorID, f.monitor)
	mon.sub(t, pfx+"/+/status")
	mon.sub(t, pfx+"/+/checkin")
	mon.sub(t, pfx+"/+/result")
	ingest := f.mustConnect("kiosk-ingest", f.ingest)
	ingest.sub(t, pfx+"/+/status")
	ingest.sub(t, pfx+"/+/checkin")

	a.pub(t, pfx+"/kiosk-a-01/checkin", "checkin-a", false)
	ingest.waitFor(t, pfx+"/kiosk-a-01/checkin", "checkin-a")
	mon.pub(t, pfx+"/kiosk-a-01/result", "forged-by-monitor", false)
	mon.pub(t, pfx+"/kiosk-a-01/status", "forged-status", true)
	a.pub(t, pfx+"/kiosk-a-01/status", "status-a", true)
	mon.waitFor(t, pfx+"/kiosk-a-01/status", "status-a")
	ingest.waitFor(t, pfx+"/kiosk-a-01/status", "status-a")
	ingest.pub(t, pfx+"/kiosk-a-01/result", "barrier", false) // ordered after the checkin
	got := mon.snapshot()
	if len(got[pfx+"/kiosk-a-01/checkin"]) != 0 || len(got[pfx+"/kiosk-a-01/result"]) != 0 {
		t.Fatalf("the monitor read checkins or results: %v", got)
	}
	for _, p := range got[pfx+"/kiosk-a-01/status"] {
		if p == "forged-status" {
			t.Fatalf("the monitor wrote a Status: %v", got)
		}
	}
}

// record subscribes without requiring the broker to grant it (Mosquitto
// may grant a wildcard it then filters by the ACL at delivery).
func (c *client) record(topic string) {
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		c.mu.Lock()
		c.got[m.Topic()] = append(c.got[m.Topic()], string(m.Payload()))
		c.mu.Unlock()
		c.news <- struct{}{}
	})
	tok.WaitTimeout(5 * time.Second)
}

// The config publisher's certificate writes configs and nothing else: it
// cannot forge a Result nor read checkins; the ingest's cannot write
// configs.
func TestBrokerConfigRole(t *testing.T) {
	f := startFleetBroker(t)
	tlsA := f.device("kiosk-a-01")
	a := f.mustConnect("kiosk-a-01", tlsA)
	a.sub(t, pfx+"/kiosk-a-01/result")
	a.sub(t, pfx+"/kiosk-a-01/config")
	ingest := f.mustConnect("kiosk-ingest", f.ingest)
	ingest.sub(t, pfx+"/+/checkin")
	cfg := f.mustConnect(provisioning.DefaultConfigID, f.config)
	cfg.record(pfx + "/+/checkin")
	cfg.record("$share/cfg/" + pfx + "/+/checkin")
	cfg.record(pfx + "/kiosk-a-01/checkin")
	cfg.record(pfx + "/+/status")

	t.Run("the config role cannot publish a Result", func(t *testing.T) {
		cfg.pub(t, pfx+"/kiosk-a-01/result", "forged-result-by-config", false) // acknowledged, then dropped
		ingest.pub(t, pfx+"/kiosk-a-01/result", "barrier-result", false)
		got := a.waitFor(t, pfx+"/kiosk-a-01/result", "barrier-result")
		for _, p := range got[pfx+"/kiosk-a-01/result"] {
			if p == "forged-result-by-config" {
				t.Fatalf("the config certificate wrote a Result: %v", got)
			}
		}
	})

	t.Run("the config role cannot read checkins nor Status", func(t *testing.T) {
		a.pub(t, pfx+"/kiosk-a-01/checkin", "checkin-a", false)
		a.pub(t, pfx+"/kiosk-a-01/status", "status-a", true)
		a.pub(t, pfx+"/kiosk-a-01/checkin", "barrier-checkin", false)
		ingest.waitFor(t, pfx+"/kiosk-a-01/checkin", "barrier-checkin")
		// Mosquitto writes one message to every subscriber in the same pass:
		// by now the config client would have it on its socket.
		time.Sleep(300 * time.Millisecond)
		if got := cfg.snapshot(); len(got) != 0 {
			t.Fatalf("the config certificate read: %v", got)
		}
	})

	t.Run("the ingest cannot write configs; the config role writes a retained one the kiosk reads", func(t *testing.T) {
		ingest.pub(t, pfx+"/kiosk-a-01/config", "forged-config-by-ingest", true)
		cfg.pub(t, pfx+"/kiosk-a-01/config", "config-1", true)
		got := a.waitFor(t, pfx+"/kiosk-a-01/config", "config-1")
		if c := got[pfx+"/kiosk-a-01/config"]; len(c) != 1 {
			t.Fatalf("kiosk received configs %q, want only config-1", c)
		}
		// A fresh connection gets the retained one: the config role's.
		a2 := f.mustConnect("kiosk-a-01", tlsA)
		a2.sub(t, pfx+"/kiosk-a-01/config")
		a2.waitFor(t, pfx+"/kiosk-a-01/config", "config-1")
		if c := a2.snapshot()[pfx+"/kiosk-a-01/config"]; len(c) != 1 {
			t.Fatalf("retained config: %q", c)
		}
	})
}

// TLS 1.2 only with ECDHE and AEAD suites: a client offering only a CBC
// suite with SHA-1 is refused, an AEAD one connects. The fleet CA's server
// certificates have ECDSA keys, so the ECDSA suites are the ones in play.
func TestBrokerTLSSuites(t *testing.T) {
	f := startFleetBroker(t)
	dev := f.device("kiosk-a-01")
	addr := strings.TrimPrefix(f.url, "ssl://")
	dial := func(suite uint16) error {
		tc := dev.Clone()
		tc.CipherSuites = []uint16{suite}
		tc.MaxVersion = tls.VersionTLS12
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Handshake()
	}
	if err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Error("the broker accepted TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA")
	}
	if err := dial(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Error("the broker accepted TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
	}
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		if err := dial(s); err != nil {
			t.Errorf("%s refused: %v", tls.CipherSuiteName(s), err)
		}
	}
	old := dev.Clone()
	old.MaxVersion = tls.VersionTLS11
	old.MinVersion = tls.VersionTLS10
	if c, err := tls.Dial("tcp", addr, old); err == nil {
		c.Close()
		t.Error("the broker accepted TLS 1.1")
	}
	// And MQTT over the AEAD suite works end to end.
	tc := dev.Clone()
	tc.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	tc.MaxVersion = tls.VersionTLS12
	ingest := f.mustConnect("kiosk-ingest", f.ingest)
	ingest.sub(t, pfx+"/+/checkin")
	a := f.mustConnect("kiosk-a-01", tc)
	a.pub(t, pfx+"/kiosk-a-01/checkin", "over-aead", false)
	ingest.waitFor(t, pfx+"/kiosk-a-01/checkin", "over-aead")
}

// A packet with the contract's largest payload (4 KiB, on the longest
// device id's topic) passes; a larger one is refused and its connection
// dropped.
func TestBrokerPacketSize(t *testing.T) {
	f := startFleetBroker(t)
	id := "kiosk-" + strings.Repeat("x", 58) // 64 characters: the longest device id
	if !protocol.ValidDeviceID(id) {
		t.Fatalf("%q is not a device id", id)
	}
	ingest := f.mustConnect("kiosk-ingest", f.ingest)
	ingest.sub(t, pfx+"/+/checkin")
	k := f.mustConnect(id, f.device(id))
	full := strings.Repeat("a", protocol.MaxPayload)
	k.pub(t, pfx+"/"+id+"/checkin", full, false)
	ingest.waitFor(t, pfx+"/"+id+"/checkin", full)

	big := strings.Repeat("b", 2*protocol.MaxPayload)
	k.Publish(pfx+"/"+id+"/checkin", 1, false, big)
	select {
	case <-k.lost:
	case <-time.After(10 * time.Second):
		t.Fatalf("a %d-byte payload did not drop the connection\nbroker log:\n%s", len(big), f.broker.Log())
	}
	ingest.pub(t, pfx+"/"+id+"/result", "barrier", false) // the ingest is still connected
	for _, p := range ingest.snapshot()[pfx+"/"+id+"/checkin"] {
		if p == big {
			t.Fatal("the oversized payload reached the ingest")
		}
	}
}
