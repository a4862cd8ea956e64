package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// tlsWorld is a fleet: CA, Mosquitto with the generated TLS listener and
// ACL, central's publisher, and one kioskd that starts unprovisioned.
type tlsWorld struct {
	t       *testing.T
	dir     string
	ca      *provisioning.CA
	broker  *testbroker.Broker
	url     string
	central paho.Client
	config  string
	state   string
	sock    string
	kioskd  *proc
	device  string
}

func newTLSWorld(t *testing.T) *tlsWorld {
	t.Helper()
	testbroker.RequireMosquitto(t, "provisioning runs over its TLS listener with ACLs")
	dir := t.TempDir()
	now := time.Now()
	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	scert, skey, _ := ca.IssueServer([]string{"localhost", "127.0.0.1"}, 0, now, rand.Reader)
	os.WriteFile(filepath.Join(dir, "server.crt"), scert, 0o600)
	os.WriteFile(filepath.Join(dir, "server.key"), skey, 0o600)
	o := provisioning.BrokerOpts{Port: "%PORT%", Bind: "127.0.0.1", CAFile: filepath.Join(ca.Dir, provisioning.CACertFile),
		CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"), ACLFile: filepath.Join(dir, "kiosk.acl")}
	os.WriteFile(o.ACLFile, []byte(o.ACL()), 0o600)
	w := &tlsWorld{t: t, dir: dir, ca: ca, device: "kiosk-tls-01", config: filepath.Join(dir, "kioskd.toml"),
		state: filepath.Join(dir, "state"), sock: filepath.Join(dir, "control.sock")}
	w.broker = testbroker.StartOpts(t, testbroker.Opts{Listener: o.Listener(), Extra: o.Fleet()})
	w.url = fmt.Sprintf("ssl://127.0.0.1:%d", w.broker.Port)

	icert, ikey, _ := ca.IssueClient(provisioning.DefaultConfigID, 0, now, rand.Reader) // central here publishes configs: the config role
	pair, _ := tls.X509KeyPair(icert, ikey)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	w.central = paho.NewClient(paho.NewClientOptions().AddBroker(w.url).SetClientID("central").
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}))
	if tok := w.central.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("central: %v\n%s", tok.Error(), w.broker.Log())
	}
	t.Cleanup(func() { w.central.Disconnect(50) })

	conf := fmt.Sprintf("device_id = %q\nstate_dir = %q\n\n[event]\nid = \"evt-local\"\n\n[tap]\ndebounce = \"50ms\"\nhold = \"1s\"\n\n"+
		"[control]\nsocket = %q\n\n[log]\nlevel = \"debug\"\n", w.device, w.state, w.sock)
	os.WriteFile(w.config, []byte(conf), 0o600)
	return w
}

func (w *tlsWorld) startKiosk() {
	w.t.Helper()
	w.kioskd = start(w.t, "kioskd", filepath.Join(w.dir, "kioskd.log"), "-config", w.config)
	w.waitFor("kioskd answers", func() bool {
		if w.kioskd.exited() {
			w.t.Fatalf("kioskd exited:\n%s", w.kioskd.logText())
		}
		_, err := statusAt(w.sock)
		return err == nil
	})
}

func (w *tlsWorld) status() provStatus {
	w.t.Helper()
	s, err := statusAt(w.sock)
	if err != nil {
		w.t.Fatalf("status: %v\n%s", err, tail(w.kioskd))
	}
	return s
}

func (w *tlsWorld) waitFor(what string, cond func() bool) {
	w.t.Helper()
	if !waitfor.Within(20*time.Second, cond) {
		s, _ := statusAt(w.sock)
		w.t.Fatalf("timed out waiting for %s\nstatus %+v\nkioskd:\n%s", what, s, tail(w.kioskd))
	}
}

// bundle provisions the kiosk's identity (made by kioskd at its start) as
// `kioskctl provision` does.
func (w *tlsWorld) bundle(device string, initial []byte) *provisioning.Bundle {
	w.t.Helper()
	id, err := provisioning.LoadIdentity(w.state, device)
	if err != nil {
		w.t.Fatal(err)
	}
	csr, _ := id.CSR(rand.Reader)
	b, err := w.ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: id.PairingCode(), Broker: w.url,
		Config: initial, Now: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *tlsWorld) publishConfig(payload []byte) {
	w.t.Helper()
	tok := w.central.Publish(protocol.Topic(protocol.DefaultPrefix, w.device, protocol.KindConfig), 1, true, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		w.t.Fatal(tok.Error())
	}
}

func eventConfig(serial int64, event string, extra string) []byte {
	return []byte(fmt.Sprintf(`{"serial":%d,"eventId":%q,"points":1,"constraint":{"period":"DAY","volume":1}%s}`, serial, event, extra))
}

func TestBundleCopiedOverThenSignedConfigsOnly(t *testing.T) {
	w := newTLSWorld(t)
	w.startKiosk()
	if st := w.status(); st.Provisioned || st.PairingCode == "" || st.EventID != "evt-local" {
		t.Fatalf("before provisioning: %+v", st)
	}

	// A bundle for another device, copied over, is refused; the kiosk stays as it was.
	other := t.TempDir()
	otherID, _, _ := provisioning.LoadOrCreateIdentity(other, "kiosk-other-01", rand.Reader)
	csr, _ := otherID.CSR(rand.Reader)
	wrong, err := w.ca.Provision(provisioning.ProvisionRequest{CSR: csr, Code: otherID.PairingCode(), Broker: w.url, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	wrongPath := filepath.Join(w.dir, "wrong.bundle")
	os.WriteFile(wrongPath, wrong.Encode(), 0o644)
	out, err := exec.Command(filepath.Join(binDir, "kioskctl"), "provision", "apply", "-config", w.config, wrongPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another device") {
		t.Fatalf("kioskctl provision apply of another device's bundle: %v %s", err, out)
	}
	bundlePath := filepath.Join(w.state, provisioning.BundleFile)
	if _, err := os.Stat(bundlePath); !os.IsNotExist(err) {
		t.Fatalf("a refused bundle was installed: %v", err)
	}
	os.WriteFile(bundlePath, wrong.Encode(), 0o600) // copied over by hand
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	line, err := control.Call(ctx, w.sock, control.Request{Op: "reload"})
	cancel()
	if err != nil || !bytes.Contains(line, []byte(`"ok":false`)) || !bytes.Contains(line, []byte("another device")) {
		t.Fatalf("reload with another device's bundle: %v %s", err, line)
	}
	if st := w.status(); st.Provisioned || len(st.Warnings) != 2 || !strings.Contains(st.Warnings[1], "another device") {
		t.Fatalf("after the wrong bundle: %+v", st)
	}

	// The right one, copied over (no command): kioskd connects within seconds.
	good := w.bundle(w.device, eventConfig(1, "evt-1", `,"blockedChips":["04AABBCCDDEEFF"]`))
	if err := provisioning.WriteFileAtomic(bundlePath, good.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	w.waitFor("provisioned from the copied bundle", func() bool {
		st := w.status()
		return st.Provisioned && st.MQTT == "connected" && st.EventID == "evt-1" && st.ConfigSerial == 1
	})
	if r := w.tap("04AABBCCDDEEFF"); r.Outcome != "blocked" {
		t.Fatalf("hot-listed chip: %+v", r)
	}

	// A newer signed config is taken (bound to the kiosk, as the bundle's
	// first event is: from then on the kiosk takes bound ones only).
	signed, err := w.ca.SignConfigFor(eventConfig(5, "evt-5", ""), w.device, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.publishConfig(signed)
	w.waitFor("serial 5 in force", func() bool { st := w.status(); return st.EventID == "evt-5" && st.ConfigSerial == 5 })

	// Rejected: another key, tampered, an old serial, expired.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	foreign, _ := protocol.SignConfig(protocol.Config{Serial: 6, EventID: "evt-foreign", Points: 1,
		Constraint: protocol.Constraint{Period: "DAY", Volume: 1}}, otherKey)
	good6, _ := w.ca.SignConfigFor(eventConfig(6, "evt-6", ""), w.device, time.Now())
	tampered := bytes.Replace(good6, []byte(`"evt-6"`), []byte(`"evt-evil"`), 1)
	old, _ := w.ca.SignConfigFor(eventConfig(4, "evt-4", ""), w.device, time.Now())
	expired, _ := w.ca.SignConfigFor(eventConfig(7, "evt-7", `,"validUntil":"2020-01-01T00:00:00Z"`), w.device, time.Now())
	for i, p := range [][]byte{foreign, tampered, old, expired} {
		w.publishConfig(p)
		w.waitFor(fmt.Sprintf("config %d rejected", i), func() bool { return w.status().ConfigsRejected == int64(i+1) })
		if st := w.status(); st.EventID != "evt-5" || st.ConfigSerial != 5 {
			t.Fatalf("after rejected config %d: %+v", i, st)
		}
	}
	if log := w.kioskd.logText(); !strings.Contains(log, "remote config rejected") || strings.Contains(log, "04AABBCCDDEEFF") {
		t.Fatal("rejections not logged, or a whole card number logged")
	}

	// After a restart the accepted config is still in force (the retained
	// one is the expired config, rejected again).
	w.kioskd.stop(syscall.SIGTERM)
	w.startKiosk()
	w.waitFor("connected again", func() bool { return w.status().MQTT == "connected" })
	w.waitFor("the retained expired config rejected again", func() bool { return w.status().ConfigsRejected == 1 })
	if st := w.status(); st.EventID != "evt-5" || st.ConfigSerial != 5 {
		t.Fatalf("after restart: %+v", st)
	}
	for _, f := range []string{provisioning.IdentityFile, provisioning.BundleFile, provisioning.RemoteConfigFile} {
		if fi, err := os.Stat(filepath.Join(w.state, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
}

func (w *tlsWorld) tap(chip string) tapReply {
	w.t.Helper()
	ww := &world{t: w.t, sock: w.sock}
	r, err := ww.tap(chip)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func TestFactoryResetRefusedWhilePending(t *testing.T) {
	w := newWorld(t) // plain broker, no ingest: taps stay pending
	w.startKiosk()
	w.mustTap(chip(1), "saved")
	w.mustTap(chip(2), "saved")
	ctl := filepath.Join(binDir, "kioskctl")
	// While kioskd runs, no reset at all.
	out, err := exec.Command(ctl, "factory-reset", "-config", w.config, "-force").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kioskd is running") {
		t.Fatalf("reset of a running kiosk: %v %s", err, out)
	}
	w.kioskd.stop(syscall.SIGTERM)
	out, err = exec.Command(ctl, "factory-reset", "-config", w.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "2 checkins are not yet delivered") {
		t.Fatalf("reset with pending checkins: %v %s", err, out)
	}
	state := filepath.Join(w.dir, "state")
	if _, err := os.Stat(filepath.Join(state, provisioning.IdentityFile)); err != nil {
		t.Fatalf("refused reset removed the identity: %v", err)
	}
	out, err = exec.Command(ctl, "factory-reset", "-config", w.config, "--force").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 pending checkins were lost") {
		t.Fatalf("forced reset: %v %s", err, out)
	}
	for _, f := range []string{provisioning.IdentityFile, "queue.db"} {
		if _, err := os.Stat(filepath.Join(state, f)); !os.IsNotExist(err) {
			t.Errorf("%s survived the reset: %v", f, err)
		}
	}
}
