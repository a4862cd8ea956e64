package provisioning

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/uitpas/tap-kiosk/protocol"
)

// ErrNoIdentity: state_dir holds no device key yet (kioskd creates it at its
// first start; `kioskctl identity` does too).
var ErrNoIdentity = errors.New("provisioning: no device identity yet")

// ErrPairingCode: the pairing code does not belong to the device's key.
var ErrPairingCode = errors.New("provisioning: pairing code does not match the device's key")

// Identity is a kiosk's own key pair: ECDSA P-256, which Mosquitto (OpenSSL)
// and every TLS stack take. The private key never leaves state_dir: the
// device hands out a CSR and gets a certificate back. Identity prints and
// logs as its device id and pairing code only, never the key.
type Identity struct {
	DeviceID string
	key      *ecdsa.PrivateKey
}

// NewIdentity makes a fresh key for deviceID.
func NewIdentity(deviceID string, rnd io.Reader) (*Identity, error) {
	if !protocol.ValidDeviceID(deviceID) {
		return nil, fmt.Errorf("provisioning: device id %q: %w", deviceID, protocol.ErrBadDevice)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("provisioning: generate key: %w", err)
	}
	return &Identity{DeviceID: deviceID, key: k}, nil
}

// LoadIdentity reads the device key from stateDir; ErrNoIdentity when there
// is none.
func LoadIdentity(stateDir, deviceID string) (*Identity, error) {
	path := filepath.Join(stateDir, IdentityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", ErrNoIdentity, path)
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: identity: %w", err)
	}
	k, err := parseECKey(b)
	if err != nil {
		return nil, fmt.Errorf("provisioning: identity %s: %w", path, err)
	}
	return &Identity{DeviceID: deviceID, key: k}, nil
}

// LoadOrCreateIdentity loads the device key, or creates it (mode 0600) on
// first start; created says which.
func LoadOrCreateIdentity(stateDir, deviceID string, rnd io.Reader) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(stateDir, deviceID)
	if err == nil || !errors.Is(err, ErrNoIdentity) {
		return id, false, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("provisioning: state_dir: %w", err)
	}
	id, err = NewIdentity(deviceID, rnd)
	if err != nil {
		return nil, false, err
	}
	if err := id.Save(stateDir); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// Save writes the key into stateDir, mode 0600; an existing key is never
// overwritten (factory-reset removes it).
func (id *Identity) Save(stateDir string) error {
	der, err := x509.MarshalPKCS8PrivateKey(id.key)
	if err != nil {
		return fmt.Errorf("provisioning: identity: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeNew(filepath.Join(stateDir, IdentityFile), pemBytes, 0o600); err != nil {
		return fmt.Errorf("provisioning: save identity: %w", err)
	}
	return nil
}

// Public is the device's public key.
func (id *Identity) Public() *ecdsa.PublicKey { return &id.key.PublicKey }

// PairingCode is the short code shown on the kiosk's screen (XXXX-XXXX).
func (id *Identity) PairingCode() string {
	c, _ := PairingCode(id.Public())
	return c
}

// CSR returns a PEM certificate signing request with CN = device id.
func (id *Identity) CSR(rnd io.Reader) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rnd, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: id.DeviceID},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, id.key)
	if err != nil {
		return nil, fmt.Errorf("provisioning: csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// TLSCertificate pairs the device key with its client certificate (PEM).
func (id *Identity) TLSCertificate(certPEM []byte) (tls.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, errors.New("provisioning: client certificate: no PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("provisioning: client certificate: %w", err)
	}
	if !id.key.PublicKey.Equal(cert.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("provisioning: client certificate is for another key: %w", ErrWrongDevice)
	}
	return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: id.key, Leaf: cert}, nil
}

// String names the identity without its key.
func (id *Identity) String() string { return id.DeviceID + " (" + id.PairingCode() + ")" }

// LogValue keeps the key out of structured logs.
func (id *Identity) LogValue() slog.Value { return slog.StringValue(id.String()) }

// crockford is Crockford's base32 alphabet: no I, L, O, U, so a code read
// off a small screen cannot be mistyped into another valid code.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// PairingCode derives the 8-character code (40 bits of the SHA-256 of the
// public key's DER, Crockford base32) shown as XXXX-XXXX. A technician reads
// it off the kiosk; `kioskctl provision` checks the CSR's key against it, so
// a certificate is only issued for the box in front of the technician.
func PairingCode(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("provisioning: pairing code: %w", err)
	}
	sum := sha256.Sum256(der)
	var v uint64
	for _, b := range sum[:5] {
		v = v<<8 | uint64(b)
	}
	out := make([]byte, 0, 9)
	for i := 7; i >= 0; i-- {
		if i == 3 {
			out = append(out, '-')
		}
		out = append(out, crockford[(v>>(5*uint(i)))&31])
	}
	return string(out), nil
}

// NormalizeCode reads a code as typed: any case, dashes and spaces ignored,
// O read as 0 and I/L as 1 (Crockford's decoding rules).
func NormalizeCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case '-', ' ', '\t':
			continue
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) == 8 {
		return out[:4] + "-" + out[4:]
	}
	return out
}

func parseECKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}
