package provisioning

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func TestIdentityCreatedOnceMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id, created, err := LoadOrCreateIdentity(dir, "kiosk-a-01", rand.Reader)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity mode %v, want 0600", fi.Mode().Perm())
	}
	again, created, err := LoadOrCreateIdentity(dir, "kiosk-a-01", rand.Reader)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if again.PairingCode() != id.PairingCode() {
		t.Fatalf("pairing code changed across restarts: %s → %s", id.PairingCode(), again.PairingCode())
	}
	if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$`).MatchString(id.PairingCode()) {
		t.Fatalf("pairing code %q is not XXXX-XXXX in Crockford base32", id.PairingCode())
	}
	if err := id.Save(dir); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Save over an existing key: %v, want ErrExist", err)
	}
	if s := id.String(); strings.Contains(s, "PRIVATE") || !strings.Contains(s, id.PairingCode()) {
		t.Fatalf("String() = %q", s)
	}
}

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{
		"7k3m-q9xd": "7K3M-Q9XD", "7K3MQ9XD": "7K3M-Q9XD", " 7k3m q9xd ": "7K3M-Q9XD",
		"O1IL-0000": "0111-0000", "ABC": "ABC",
	} {
		if got := NormalizeCode(in); got != want {
			t.Errorf("NormalizeCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// fleet is a CA and one device, as a test's starting point.
type fleet struct {
	ca    *CA
	dev   *Identity
	state string
	csr   []byte
}

func newFleet(t *testing.T, device string) *fleet {
	t.Helper()
	ca, err := InitCA(filepath.Join(t.TempDir(), "ca"), "", t0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	dev, _, err := LoadOrCreateIdentity(state, device, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := dev.CSR(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fleet{ca: ca, dev: dev, state: state, csr: csr}
}

func TestCAInitOnceAndReload(t *testing.T) {
	f := newFleet(t, "kiosk-a-01")
	if _, err := InitCA(f.ca.Dir, "", t0, rand.Reader); !errors.Is(err, ErrCAExists) {
		t.Fatalf("second init: %v, want ErrCAExists", err)
	}
	for _, name := range []string{CAKeyFile, ConfigKeyFile} {
		fi, err := os.Stat(filepath.Join(f.ca.Dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi.Mode(), err)
		}
	}
	ca, err := LoadCA(f.ca.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.ConfigPublicKey().Equal(f.ca.ConfigPublicKey()) {
		t.Fatal("config key changed on reload")
	}
	pub, _ := os.ReadFile(filepath.Join(f.ca.Dir, ConfigPubFile))
	if k, err := ParseConfigKey(string(pub)); err != nil || !k.Equal(ca.ConfigPublicKey()) {
		t.Fatalf("config.pub: %v", err)
	}
}

func TestProvisionAndApply(t *testing.T) {
	f := newFleet(t, "kiosk-a-01")
	event := []byte(`{"serial":1,"eventId":"evt-1","points":1,"constraint":{"period":"DAY","volume":1},"checkinCode":"LGIWNWB"}`)
	// The CSR travels inside `kioskctl identity`'s output.
	text := append([]byte("device id: kiosk-a-01\npairing code: "+f.dev.PairingCode()+"\n"), f.csr...)
	b, err := f.ca.Provision(ProvisionRequest{CSR: text, Code: strings.ToLower(f.dev.PairingCode()),
		DeviceID: "kiosk-a-01", Broker: "ssl://mqtt.example.org:8883", Config: event, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	l, err := b2.Apply(f.state, f.dev, false)
	if err != nil {
		t.Fatal(err)
	}
	if l.ClientCert.Subject.CommonName != "kiosk-a-01" || l.TLS.ServerName != "mqtt.example.org" || l.Prefix != "kiosk/v1" {
		t.Fatalf("link %+v", l)
	}
	// The first event is bound to the device: another kiosk refuses it.
	if c, err := protocol.VerifyConfig(b2.Config, f.ca.ConfigPublicKey()); err != nil || c.DeviceID != "kiosk-a-01" {
		t.Fatalf("the bundle's event: deviceId %q, %v", c.DeviceID, err)
	}
	if d := DaysLeft(l.ClientCert, t0); d != DefaultCertDays-1 && d != DefaultCertDays {
		t.Fatalf("days left %d", d)
	}
	// Before the certificate's start (a Pi at 1970) TLS uses the floor.
	if got := l.TLS.Time(); got.Before(t0.Add(-2 * time.Hour)) {
		t.Fatalf("TLS time %v", got)
	}
	c, err := protocol.VerifyConfig(l.Config, f.ca.ConfigPublicKey())
	if err != nil || c.CheckinCode != "LGIWNWB" || c.IssuedAt == "" {
		t.Fatalf("initial config %+v %v", c, err)
	}
	loaded, err := LoadBundle(f.state)
	if err != nil || loaded.DeviceID != "kiosk-a-01" {
		t.Fatalf("LoadBundle: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(f.state, BundleFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode %v", fi.Mode())
	}
}

func TestProvisionRefusals(t *testing.T) {
	f := newFleet(t, "kiosk-a-01")
	req := ProvisionRequest{CSR: f.csr, Code: f.dev.PairingCode(), Broker: "ssl://mqtt.example.org:8883", Now: t0}

	wrong := req
	wrong.Code = "0000-0000"
	if _, err := f.ca.Provision(wrong); !errors.Is(err, ErrPairingCode) {
		t.Fatalf("wrong pairing code: %v", err)
	}
	other := req
	other.DeviceID = "kiosk-b-01"
	if _, err := f.ca.Provision(other); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("wrong device: %v", err)
	}
	plain := req
	plain.Broker = "tcp://mqtt.example.org:1883"
	if _, err := f.ca.Provision(plain); err == nil {
		t.Fatal("tcp:// broker accepted")
	}
	tampered := req
	tampered.CSR = bytes.Replace(f.csr, []byte("A"), []byte("B"), 3)
	if _, err := f.ca.Provision(tampered); err == nil {
		t.Fatal("tampered CSR accepted")
	}

	// A bundle for device A applied on device B is refused.
	bundle, err := f.ca.Provision(req)
	if err != nil {
		t.Fatal(err)
	}
	bState := t.TempDir()
	devB, _, _ := LoadOrCreateIdentity(bState, "kiosk-b-01", rand.Reader)
	if _, err := bundle.Apply(bState, devB, false); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("bundle for another device: %v", err)
	}
	// Same device id, another key (a kiosk that was factory-reset).
	reset := t.TempDir()
	devA2, _, _ := LoadOrCreateIdentity(reset, "kiosk-a-01", rand.Reader)
	if _, err := bundle.Apply(reset, devA2, false); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("bundle for another key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bState, BundleFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused bundle was written")
	}
	// A certificate from another CA.
	otherCA, _ := InitCA(filepath.Join(t.TempDir(), "ca2"), "", t0, rand.Reader)
	forged, _ := otherCA.Provision(req)
	forged.CACert = bundle.CACert
	if _, err := forged.Check(f.dev, false, nil); err == nil {
		t.Fatal("client certificate of another CA accepted")
	}
}

func TestIssueClientRefusesDeviceNames(t *testing.T) {
	f := newFleet(t, "kiosk-a-01")
	if _, _, err := f.ca.IssueClient("kiosk-a-01", 0, t0, rand.Reader); err == nil {
		t.Fatal("a service certificate with a device id as CN")
	}
	if _, _, err := f.ca.IssueClient(DefaultIngestID, 0, t0, rand.Reader); err != nil {
		t.Fatal(err)
	}
}

func signed(t *testing.T, key ed25519.PrivateKey, serial int64, mutate func(*protocol.Config)) []byte {
	t.Helper()
	c := protocol.Config{Serial: serial, EventID: "evt-" + string(rune('a'+serial%26)), Points: 1,
		Constraint: protocol.Constraint{Period: "DAY", Volume: 1}, BlockedChips: []string{"04AABBCCDDEEFF"}}
	if mutate != nil {
		mutate(&c)
	}
	b, err := protocol.SignConfig(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigStore(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	s := NewConfigStore(dir, pub)
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offer(signed(t, key, 5, nil), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offer(signed(t, key, 5, nil), t0); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("same payload again: %v", err)
	}
	tampered := bytes.Replace(signed(t, key, 6, nil), []byte(`"points":1`), []byte(`"points":9`), 1)
	expired := signed(t, key, 7, func(c *protocol.Config) { c.ValidUntil = protocol.FormatTime(t0.Add(-time.Minute)) })
	for name, tc := range map[string]struct {
		payload []byte
		want    error
	}{
		"other key":  {signed(t, otherKey, 6, nil), protocol.ErrBadSig},
		"tampered":   {tampered, protocol.ErrBadSig},
		"unsigned":   {[]byte(`{"v":1,"serial":9,"eventId":"x","points":1,"constraint":{"period":"DAY","volume":1}}`), protocol.ErrBadSig},
		"old serial": {signed(t, key, 4, nil), protocol.ErrOldSerial},
		"replay":     {signed(t, key, 5, func(c *protocol.Config) { c.EventID = "evt-replay" }), protocol.ErrOldSerial},
		"expired":    {expired, protocol.ErrNotInForce},
		"garbage":    {[]byte("not json"), protocol.ErrMalformed},
	} {
		if _, err := s.Offer(tc.payload, t0); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if c, _ := s.Current(); c.Serial != 5 {
			t.Fatalf("%s: serial in force %d, want 5", name, c.Serial)
		}
	}
	// A restart finds serial 5 in force and still refuses 4.
	s2 := NewConfigStore(dir, pub)
	if err := s2.Load(); err != nil {
		t.Fatal(err)
	}
	if c, ok := s2.Current(); !ok || c.Serial != 5 || c.BlockedChips[0] != "04AABBCCDDEEFF" {
		t.Fatalf("after restart: %+v %v", c, ok)
	}
	if _, err := s2.Offer(signed(t, key, 4, nil), t0); !errors.Is(err, protocol.ErrOldSerial) {
		t.Fatalf("old serial after restart: %v", err)
	}
	if _, err := s2.Offer(signed(t, key, 8, nil), t0); err != nil {
		t.Fatal(err)
	}
	// With another key (re-provisioned into another fleet) the file no
	// longer verifies and is left out of force.
	otherPub := otherKey.Public().(ed25519.PublicKey)
	s3 := NewConfigStore(dir, otherPub)
	if err := s3.Load(); !errors.Is(err, protocol.ErrBadSig) {
		t.Fatalf("load with another key: %v", err)
	}
	if _, ok := s3.Current(); ok {
		t.Fatal("config of another key in force")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

func TestMosquittoACLIsTheTopicTable(t *testing.T) {
	o := DefaultBrokerOpts()
	acl := o.ACL()
	for _, line := range []string{
		"pattern write kiosk/v1/%u/checkin", "pattern write kiosk/v1/%u/status",
		"pattern read kiosk/v1/%u/result", "pattern read kiosk/v1/%u/config",
		"pattern write kiosk/v1/%u/csr", "pattern read kiosk/v1/%u/cert",
		"user ingest.central", "topic read kiosk/v1/+/checkin", "topic read $share/+/kiosk/v1/+/checkin",
		"topic write kiosk/v1/+/result", "user config.central", "topic write kiosk/v1/+/config",
		"user monitor.central",
	} {
		if !strings.Contains(acl, line+"\n") {
			t.Errorf("ACL lacks %q:\n%s", line, acl)
		}
	}
	if n := strings.Count(acl, "pattern "); n != 6 {
		t.Errorf("%d pattern lines, want the contract's 4 and renewal's 2", n)
	}
	conf := o.Conf()
	for _, line := range []string{"listener 8883", "require_certificate true", "use_identity_as_username true",
		"allow_anonymous false", "persistence true", "acl_file /etc/mosquitto/kiosk.acl", "max_queued_messages",
		"crlfile /etc/mosquitto/certs/crl.pem"} {
		if !strings.Contains(conf, line) {
			t.Errorf("config lacks %q", line)
		}
	}
}

// Each central role is its own user block with only its lines.
func TestMosquittoACLRoles(t *testing.T) {
	acl := DefaultBrokerOpts().ACL()
	blocks := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(acl, "\n") {
		switch {
		case strings.HasPrefix(l, "user "):
			cur = strings.TrimPrefix(l, "user ")
		case strings.TrimSpace(l) == "":
			cur = ""
		case cur != "" && !strings.HasPrefix(l, "#"):
			blocks[cur] = append(blocks[cur], l)
		}
	}
	want := map[string]string{
		DefaultIngestID:  "topic read kiosk/v1/+/checkin|topic read $share/+/kiosk/v1/+/checkin|topic read kiosk/v1/+/status|topic read kiosk/v1/+/config|topic write kiosk/v1/+/result",
		DefaultConfigID:  "topic write kiosk/v1/+/config",
		DefaultMonitorID: "topic read kiosk/v1/+/status",
		DefaultSignerID:  "topic read kiosk/v1/+/csr|topic write kiosk/v1/+/cert",
	}
	if len(blocks) != len(want) {
		t.Errorf("users %v, want %v", blocks, want)
	}
	for u, w := range want {
		if got := strings.Join(blocks[u], "|"); got != w {
			t.Errorf("%s: %s\nwant %s", u, got, w)
		}
	}
	// One CN in two roles is one block with both (Mosquitto keys users by name).
	o := DefaultBrokerOpts()
	o.Config = []string{DefaultIngestID}
	if n := strings.Count(o.ACL(), "user "+DefaultIngestID+"\n"); n != 1 {
		t.Errorf("%d blocks for a CN in two roles", n)
	}
}

// The broker's limits per client are bounded and its TLS suites modern.
func TestMosquittoLimitsAndTLS(t *testing.T) {
	conf := DefaultBrokerOpts().Conf()
	value := func(key string) string {
		for _, l := range strings.Split(conf, "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == key {
				return f[1]
			}
		}
		t.Errorf("no %s in\n%s", key, conf)
		return ""
	}
	num := func(key string) int {
		n, err := strconv.Atoi(value(key))
		if err != nil {
			t.Errorf("%s: %v", key, err)
		}
		return n
	}
	if n := num("max_queued_bytes"); n <= 0 || n > 128<<20 {
		t.Errorf("max_queued_bytes %d: want a bound of at most 128 MiB", n)
	}
	// The ingest's session holds a few minutes of 1000 kiosks at 0.2 tap/s,
	// at the size of a real checkin (a few hundred bytes).
	msgs := num("max_queued_messages")
	if msgs < 200*300 || msgs > 1000000/2 {
		t.Errorf("max_queued_messages %d: want at least 5 minutes of 200/s, far below the old million", msgs)
	}
	if b := num("max_queued_bytes"); b/msgs < 500 {
		t.Errorf("max_queued_bytes %d holds only %d bytes per queued message", b, b/msgs)
	}
	if n := num("max_packet_size"); n <= protocol.MaxPayload+100 || n > protocol.MaxPayload+1024 {
		t.Errorf("max_packet_size %d: want a small margin above %d", n, protocol.MaxPayload)
	}
	if v := value("tls_version"); v != "tlsv1.2" {
		t.Errorf("tls_version %s", v)
	}
	for _, c := range strings.Split(value("ciphers"), ":") {
		if !strings.HasPrefix(c, "ECDHE-ECDSA-") && !strings.HasPrefix(c, "ECDHE-RSA-") ||
			!(strings.Contains(c, "-GCM-") || strings.HasSuffix(c, "-CHACHA20-POLY1305")) {
			t.Errorf("cipher %q is not ECDHE with AEAD", c)
		}
	}
	if !strings.Contains(value("ciphers"), "ECDHE-ECDSA-AES128-GCM-SHA256") {
		t.Error("no ECDSA AEAD suite: the fleet CA's server keys are ECDSA")
	}
	if strings.Contains(conf, "message_size_limit") {
		t.Error("message_size_limit is deprecated in Mosquitto 2: max_packet_size bounds packets")
	}
}
