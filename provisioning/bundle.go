package provisioning

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// BundleVersion is the bundle format's version.
const BundleVersion = 1

// ErrNotProvisioned: state_dir holds no provisioning bundle.
var ErrNotProvisioned = errors.New("provisioning: not provisioned")

// Bundle is what central hands a kiosk at provisioning: everything it needs
// to reach the fleet broker and trust central. It holds no secret (the
// device's key never left the kiosk), so it may travel by mail or USB stick.
type Bundle struct {
	V           int    `json:"v"`
	DeviceID    string `json:"deviceId"`
	Broker      string `json:"broker"`
	TopicPrefix string `json:"topicPrefix"`
	CACert      string `json:"caCert"`     // PEM: the fleet CA (verifies the broker)
	ClientCert  string `json:"clientCert"` // PEM: this device's certificate, CN = device id
	ConfigKey   string `json:"configKey"`  // base64 Ed25519 public key for Configs
	// Config is the initial event: a signed Config, applied like a retained one.
	Config   json.RawMessage `json:"config,omitempty"`
	IssuedAt string          `json:"issuedAt"`
}

// Encode is the bundle's file form.
func (b *Bundle) Encode() []byte {
	out, _ := json.MarshalIndent(b, "", "  ")
	return append(out, '\n')
}

// ParseBundle reads a bundle file's bytes.
func ParseBundle(data []byte) (*Bundle, error) {
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("provisioning: bundle: not a bundle file: %w", err)
	}
	if b.V != BundleVersion {
		return nil, fmt.Errorf("provisioning: bundle: version %d, want %d", b.V, BundleVersion)
	}
	return &b, nil
}

// LoadBundle reads the applied bundle from stateDir; ErrNotProvisioned when
// there is none.
func LoadBundle(stateDir string) (*Bundle, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, BundleFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotProvisioned
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: bundle: %w", err)
	}
	return ParseBundle(data)
}

// Link is a checked bundle, ready for the forwarder.
type Link struct {
	Broker     string
	Prefix     string
	TLS        *tls.Config
	ClientCert *x509.Certificate
	ConfigKey  ed25519.PublicKey
	// Config is the bundle's initial signed Config, if any.
	Config []byte
}

// Check verifies that the bundle belongs to id (device id and public key),
// that its client certificate chains to its CA, that its broker URL is
// acceptable (tcp:// only with allowInsecure) and its initial Config is
// signed by its config key; it returns the link to use. now is the clock
// for TLS; it is floored at the bundle's issue time, so that a Raspberry Pi
// without a real-time clock, booted at 1970, can still verify the broker
// once its certificate is valid.
func (b *Bundle) Check(id *Identity, allowInsecure bool, now func() time.Time) (*Link, error) {
	if b.DeviceID != id.DeviceID {
		return nil, fmt.Errorf("%w: the bundle is for %q, this kiosk is %q", ErrWrongDevice, b.DeviceID, id.DeviceID)
	}
	if err := checkBroker(b.Broker, allowInsecure); err != nil {
		return nil, err
	}
	prefix := b.TopicPrefix
	if prefix == "" {
		prefix = protocol.DefaultPrefix
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(b.CACert)) {
		return nil, errors.New("provisioning: bundle: caCert holds no PEM certificate")
	}
	tc, err := id.TLSCertificate([]byte(b.ClientCert))
	if err != nil {
		return nil, err
	}
	cert := tc.Leaf
	if cert.Subject.CommonName != id.DeviceID {
		return nil, fmt.Errorf("%w: client certificate CN %q", ErrWrongDevice, cert.Subject.CommonName)
	}
	// The chain is checked at the certificate's own start: whether it has
	// expired is the broker's call (and Status reports the days left).
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: cert.NotBefore.Add(time.Minute),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("provisioning: bundle: client certificate not from the bundle's CA: %w", err)
	}
	key, err := ParseConfigKey(b.ConfigKey)
	if err != nil {
		return nil, err
	}
	if len(b.Config) > 0 {
		if _, err := protocol.VerifyConfig(b.Config, key); err != nil {
			return nil, fmt.Errorf("provisioning: bundle: initial config: %w", err)
		}
	}
	u, _ := url.Parse(b.Broker)
	floor := cert.NotBefore
	if t, err := protocol.ParseTime(b.IssuedAt); err == nil && t.After(floor) {
		floor = t
	}
	if now == nil {
		now = time.Now
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		ServerName:   u.Hostname(),
		Certificates: []tls.Certificate{tc},
		Time: func() time.Time {
			if t := now(); t.After(floor) {
				return t
			}
			return floor
		},
	}
	return &Link{Broker: b.Broker, Prefix: prefix, TLS: conf, ClientCert: cert, ConfigKey: key, Config: b.Config}, nil
}

// Apply is ApplyTrust without replacing the trust in force.
func (b *Bundle) Apply(stateDir string, id *Identity, allowInsecure bool) (*Link, error) {
	l, _, err := b.ApplyTrust(stateDir, id, allowInsecure, false)
	return l, err
}

// ApplyTrust checks the bundle against the identity in stateDir and against
// what is in force there (CheckState: the same CA and config key, unless
// replaceTrust), pins its trust and writes it there (atomically, 0600).
// kioskd picks it up on its next look (the control socket's "reload" op, or
// within seconds while unprovisioned). replaced says the trust in force was
// replaced (only with replaceTrust).
func (b *Bundle) ApplyTrust(stateDir string, id *Identity, allowInsecure, replaceTrust bool) (*Link, bool, error) {
	l, err := b.Check(id, allowInsecure, nil)
	if err != nil {
		return nil, false, err
	}
	t, replaced, err := b.CheckState(stateDir, id, replaceTrust)
	if err != nil {
		return nil, false, err
	}
	if err := PinTrust(stateDir, t); err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(filepath.Join(stateDir, BundleFile), b.Encode(), 0o600); err != nil {
		return nil, false, fmt.Errorf("provisioning: apply bundle: %w", err)
	}
	return l, replaced, nil
}

// DaysLeft is how many whole days remain until cert expires (negative
// once it has).
func DaysLeft(cert *x509.Certificate, now time.Time) int {
	d := cert.NotAfter.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days--
	}
	return days
}
