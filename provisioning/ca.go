package provisioning

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Files of a fleet CA directory (`kioskctl ca init -dir DIR`). The *.key
// files are secrets (mode 0600); ca.crt and config.pub are public.
const (
	CACertFile      = "ca.crt"
	CAKeyFile       = "ca.key"
	ConfigKeyFile   = "config.key"
	ConfigPubFile   = "config.pub"
	DefaultCAName   = "UiTPAS kiosk fleet CA"
	DefaultIngestID = "ingest.central" // a dot: can never be a device id
	DefaultCertDays = 730
	caValidity      = 20 * 365 * 24 * time.Hour
	backdate        = time.Hour // tolerate a slightly slow clock on the other side
	serverCertDays  = 825
	maxCertDays     = 3650
)

// ErrWrongDevice: a bundle, certificate or CSR belongs to another device.
var ErrWrongDevice = errors.New("provisioning: for another device")

// ErrCAExists: `ca init` never overwrites a fleet CA.
var ErrCAExists = errors.New("provisioning: a fleet CA already exists there")

// CA is the fleet's certificate authority and its config-signing key, kept
// at central. It signs device CSRs into client certificates, issues the
// broker's server certificate and central services' client certificates,
// and signs Configs.
type CA struct {
	Dir     string
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
	cfgKey  ed25519.PrivateKey
}

// InitCA creates a fleet CA in dir (created 0700): an ECDSA P-256 CA
// certificate and key, and the Ed25519 config-signing key. It refuses to
// touch a directory that already holds one.
func InitCA(dir, name string, now time.Time, rnd io.Reader) (*CA, error) {
	if name == "" {
		name = DefaultCAName
	}
	for _, f := range []string{CACertFile, CAKeyFile, ConfigKeyFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrCAExists, filepath.Join(dir, f))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provisioning: ca dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("provisioning: ca key: %w", err)
	}
	serial, err := serialNumber(rnd)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("provisioning: ca certificate: %w", err)
	}
	_, cfgKey, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("provisioning: config key: %w", err)
	}
	ca := &CA{Dir: dir, key: key, cfgKey: cfgKey,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	if ca.Cert, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	keyPEM, err := pkcs8PEM(key)
	if err != nil {
		return nil, err
	}
	cfgPEM, err := pkcs8PEM(cfgKey)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{CAKeyFile, keyPEM, 0o600},
		{ConfigKeyFile, cfgPEM, 0o600},
		{ConfigPubFile, []byte(base64.StdEncoding.EncodeToString(cfgKey.Public().(ed25519.PublicKey)) + "\n"), 0o644},
		{CACertFile, ca.CertPEM, 0o644},
	} {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("provisioning: ca init: %w", err)
		}
	}
	return ca, nil
}

// ErrNoConfigKey: the CA directory holds no config.key (a copy for the
// renewal signer, which signs certificates only): it cannot sign Configs
// nor provision.
var ErrNoConfigKey = errors.New("provisioning: this CA directory has no " + ConfigKeyFile + " (a signer's copy?): it cannot sign configs nor provision")

// LoadCA reads the fleet CA from dir. A directory without config.key (a
// copy for the renewal signer) loads too; what needs that key then fails
// with ErrNoConfigKey.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("provisioning: ca: %w (run `kioskctl ca init -dir %s` once)", err, dir)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("provisioning: %s: %w", CACertFile, err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("provisioning: ca: %w", err)
	}
	key, err := parseECKey(kb)
	if err != nil {
		return nil, fmt.Errorf("provisioning: %s: %w", CAKeyFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("provisioning: %s does not belong to %s", CAKeyFile, CACertFile)
	}
	cb, err := os.ReadFile(filepath.Join(dir, ConfigKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: ca: %w", err)
	}
	cfgKey, err := parseEd25519Key(cb)
	if err != nil {
		return nil, fmt.Errorf("provisioning: %s: %w", ConfigKeyFile, err)
	}
	return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: key, cfgKey: cfgKey}, nil
}

// ConfigPublicKey is the key kiosks verify Configs with (nil without
// config.key).
func (ca *CA) ConfigPublicKey() ed25519.PublicKey {
	if ca.cfgKey == nil {
		return nil
	}
	return ca.cfgKey.Public().(ed25519.PublicKey)
}

// SignConfigJSON signs a Config written by hand (the "v" and "sig" fields
// may be left out; issuedAt defaults to now) and returns the wire form,
// checked as a kiosk will check it.
func (ca *CA) SignConfigJSON(raw []byte, now time.Time) ([]byte, error) {
	return ca.SignConfigFor(raw, "", now)
}

// SignConfigFor is SignConfigJSON binding the Config to device (its
// "deviceId"; kept as written when device is ""). A file that already names
// another device is refused.
func (ca *CA) SignConfigFor(raw []byte, device string, now time.Time) ([]byte, error) {
	if ca.cfgKey == nil {
		return nil, ErrNoConfigKey
	}
	var c protocol.Config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("provisioning: config: %w", err)
	}
	if device != "" {
		if c.DeviceID != "" && c.DeviceID != device {
			return nil, fmt.Errorf("%w: the config names deviceId %q, not %q", ErrWrongDevice, c.DeviceID, device)
		}
		c.DeviceID = device
	}
	if c.IssuedAt == "" {
		c.IssuedAt = protocol.FormatTime(now)
	}
	signed, err := protocol.SignConfig(c, ca.cfgKey)
	if err != nil {
		return nil, err
	}
	if _, err := protocol.VerifyConfig(signed, ca.ConfigPublicKey()); err != nil {
		return nil, fmt.Errorf("provisioning: config: %w", err)
	}
	return signed, nil
}

// ProvisionRequest is what `kioskctl provision` is given.
type ProvisionRequest struct {
	// CSR is the device's PEM CSR; text around it (kioskctl identity's
	// output) is skipped.
	CSR []byte
	// Code is the pairing code read off the kiosk's screen.
	Code string
	// DeviceID, when set, must be the CSR's.
	DeviceID string
	Broker   string
	// AllowInsecure lets a tcp:// broker into the bundle (tests, demos);
	// the kiosk still refuses it without mqtt.allow_insecure.
	AllowInsecure bool
	Prefix        string // default protocol.DefaultPrefix
	// Config, when set, is the initial event (a Config as JSON, signed here).
	Config []byte
	Days   int // client certificate validity; default DefaultCertDays
	Now    time.Time
	Rand   io.Reader // nil → crypto/rand
}

// Provision checks the pairing code against the CSR's key, signs the CSR
// into a client certificate with CN = device id, and returns the bundle the
// kiosk applies.
func (ca *CA) Provision(r ProvisionRequest) (*Bundle, error) {
	if ca.cfgKey == nil {
		return nil, ErrNoConfigKey
	}
	if r.Rand == nil {
		r.Rand = rand.Reader
	}
	csr, err := ParseCSR(r.CSR)
	if err != nil {
		return nil, err
	}
	dev := csr.Subject.CommonName
	if r.DeviceID != "" && r.DeviceID != dev {
		return nil, fmt.Errorf("%w: the CSR is for %q, not %q", ErrWrongDevice, dev, r.DeviceID)
	}
	want, err := PairingCode(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	if NormalizeCode(r.Code) != want {
		return nil, fmt.Errorf("%w (device %s): read the code again off the kiosk's screen", ErrPairingCode, dev)
	}
	if err := checkBroker(r.Broker, r.AllowInsecure); err != nil {
		return nil, err
	}
	if r.Prefix == "" {
		r.Prefix = protocol.DefaultPrefix
	}
	certPEM, err := ca.SignDeviceCSR(csr, r.Days, r.Now, r.Rand)
	if err != nil {
		return nil, err
	}
	b := &Bundle{V: BundleVersion, DeviceID: dev, Broker: r.Broker, TopicPrefix: r.Prefix,
		CACert: string(ca.CertPEM), ClientCert: string(certPEM),
		ConfigKey: base64.StdEncoding.EncodeToString(ca.ConfigPublicKey()),
		IssuedAt:  protocol.FormatTime(r.Now)}
	if len(r.Config) > 0 {
		signed, err := ca.SignConfigFor(r.Config, dev, r.Now) // bound: no other kiosk takes it
		if err != nil {
			return nil, err
		}
		b.Config = signed
	}
	return b, nil
}

// SignDeviceCSR signs a device's CSR (checked by ParseCSR) into its client
// certificate: CN = the device id, for the CSR's key, client
// authentication only, valid days (default DefaultCertDays). Provision
// calls it after the pairing code; fleetca's renewal signer after its own
// checks. It decides nothing itself.
func (ca *CA) SignDeviceCSR(csr *x509.CertificateRequest, days int, now time.Time, rnd io.Reader) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if !protocol.ValidDeviceID(csr.Subject.CommonName) {
		return nil, fmt.Errorf("provisioning: csr CN %q: %w", csr.Subject.CommonName, protocol.ErrBadDevice)
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: csr.Subject.CommonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, csr.PublicKey, days, now, rnd)
}

// SignCRL signs a certificate revocation list with the CA key (the issuer,
// its name and key identifier, are the CA's) and returns it as PEM (X509
// CRL), the form Mosquitto's crlfile takes.
func (ca *CA) SignCRL(tmpl *x509.RevocationList, rnd io.Reader) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	der, err := x509.CreateRevocationList(rnd, tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("provisioning: sign crl: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// KeyID names a public key: the hex SHA-256 of its PKIX DER ("" for a key
// that does not marshal). Two certificates with the same KeyID are for the
// same key.
func KeyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseCertPEM reads the first PEM CERTIFICATE in b.
func ParseCertPEM(b []byte) (*x509.Certificate, error) { return parseCertPEM(b) }

// IssueServer makes a key and a server certificate for the broker, valid
// for hosts (DNS names or IP addresses); PEM cert and key.
func (ca *CA) IssueServer(hosts []string, days int, now time.Time, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("provisioning: server certificate: no host names")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if days == 0 {
		days = serverCertDays
	}
	return ca.issueWithKey(tmpl, days, now, rnd)
}

// IssueClient makes a key and a client certificate with CN = name for a
// central service (the ingest). Such names contain a dot so that no device
// can ever hold one.
func (ca *CA) IssueClient(name string, days int, now time.Time, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if name == "" || protocol.ValidDeviceID(name) || strings.ContainsAny(name, "/+#") {
		return nil, nil, fmt.Errorf("provisioning: service name %q: must not be a possible device id (use a dot, e.g. %s)", name, DefaultIngestID)
	}
	return ca.issueWithKey(&x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, days, now, rnd)
}

func (ca *CA) issueWithKey(tmpl *x509.Certificate, days int, now time.Time, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: key: %w", err)
	}
	if certPEM, err = ca.issue(tmpl, &key.PublicKey, days, now, rnd); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = pkcs8PEM(key); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, days int, now time.Time, rnd io.Reader) ([]byte, error) {
	if days == 0 {
		days = DefaultCertDays
	}
	if days < 1 || days > maxCertDays {
		return nil, fmt.Errorf("provisioning: certificate validity %d days: must be 1 to %d", days, maxCertDays)
	}
	serial, err := serialNumber(rnd)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(time.Duration(days) * 24 * time.Hour)
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rnd, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("provisioning: sign certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ParseCSR finds the PEM CSR in b (text around it is skipped), checks its
// signature and that its CN is a device id.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	var block *pem.Block
	for rest := b; ; {
		block, rest = pem.Decode(rest)
		if block == nil || block.Type == "CERTIFICATE REQUEST" {
			break
		}
	}
	if block == nil {
		return nil, errors.New("provisioning: no PEM CERTIFICATE REQUEST (give the output of `kioskctl identity`)")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("provisioning: csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("provisioning: csr signature: %w", err)
	}
	if !protocol.ValidDeviceID(csr.Subject.CommonName) {
		return nil, fmt.Errorf("provisioning: csr CN %q: %w", csr.Subject.CommonName, protocol.ErrBadDevice)
	}
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return nil, errors.New("provisioning: csr: the device key must be ECDSA P-256")
	}
	return csr, nil
}

// checkBroker accepts ssl:// (tls://, mqtts://) URLs with a host and port,
// and tcp:// only when insecure links are allowed.
func checkBroker(broker string, allowInsecure bool) error {
	u, err := url.Parse(broker)
	if err != nil || u.Host == "" || u.Port() == "" {
		return fmt.Errorf("provisioning: broker %q: not a URL like ssl://mqtt.example.org:8883", broker)
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts":
		return nil
	case "tcp", "mqtt":
		if allowInsecure {
			return nil
		}
		return fmt.Errorf("provisioning: broker %q is plain tcp:// without allow_insecure; use ssl://", broker)
	}
	return fmt.Errorf("provisioning: broker %q: scheme must be ssl://", broker)
}

func serialNumber(rnd io.Reader) (*big.Int, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	n, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("provisioning: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func pkcs8PEM(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("provisioning: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseEd25519Key(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return ek, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE")
	}
	return x509.ParseCertificate(block.Bytes)
}

// ParseConfigKey reads a config-signing public key: base64 of the 32 raw
// bytes (config.pub, the bundle's configKey).
func ParseConfigKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("provisioning: config key: not base64 of a 32-byte Ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}
