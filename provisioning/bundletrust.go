package provisioning

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/uitpas/tap-kiosk/protocol"
)

// TrustFile pins the fleet trust a provisioned kiosk is in: its CA and its
// config-signing key, for its device key. Written when a bundle is first
// applied (or kioskd first takes one), replaced only by `kioskctl provision
// apply -replace-trust`. A pin for another device key (left over from
// before a factory reset) does not count.
const TrustFile = "trust.json"

// ErrTrustChanged: a bundle brings another CA or config-signing key than
// the ones in force on this kiosk.
var ErrTrustChanged = errors.New("provisioning: the bundle brings another fleet trust (CA or config-signing key); apply it with -replace-trust if that is meant")

// ErrSameSerial: a bundle's initial event has the serial of the config in
// force but other content; it would never be put in force.
var ErrSameSerial = errors.New("provisioning: the bundle's event has the serial of the config in force but differs from it; sign it with a higher serial")

// Trust is a fleet trust as pinned in TrustFile.
type Trust struct {
	// DeviceKey is the SHA-256 of the device public key (PKIX) it is for.
	DeviceKey string `json:"deviceKey"`
	// CA is the SHA-256 of each CA certificate (DER), sorted as in the bundle.
	CA        []string `json:"ca"`
	ConfigKey string   `json:"configKey"`
}

// Trust returns the bundle's fleet trust for id.
func (b *Bundle) Trust(id *Identity) (Trust, error) {
	t := Trust{DeviceKey: deviceKeyHash(id)}
	rest := []byte(b.CACert)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return t, fmt.Errorf("provisioning: bundle: caCert: %w", err)
		}
		sum := sha256.Sum256(blk.Bytes)
		t.CA = append(t.CA, hex.EncodeToString(sum[:]))
	}
	if len(t.CA) == 0 {
		return t, errors.New("provisioning: bundle: caCert holds no PEM certificate")
	}
	key, err := ParseConfigKey(b.ConfigKey)
	if err != nil {
		return t, err
	}
	t.ConfigKey = hex.EncodeToString(key)
	return t, nil
}

func deviceKeyHash(id *Identity) string {
	der, err := x509.MarshalPKIXPublicKey(id.key.Public())
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Same reports whether t and u are the same CA and config key.
func (t Trust) Same(u Trust) bool {
	if t.ConfigKey != u.ConfigKey || len(t.CA) != len(u.CA) {
		return false
	}
	for i := range t.CA {
		if t.CA[i] != u.CA[i] {
			return false
		}
	}
	return true
}

// LoadTrust returns the trust pinned in stateDir for id; nil when there is
// none (or it is for another device key).
func LoadTrust(stateDir string, id *Identity) (*Trust, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, TrustFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning: trust: %w", err)
	}
	var t Trust
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("provisioning: %s: %w", TrustFile, err)
	}
	if t.DeviceKey != deviceKeyHash(id) {
		return nil, nil
	}
	return &t, nil
}

// PinTrust writes t as the trust in force in stateDir.
func PinTrust(stateDir string, t Trust) error {
	out, _ := json.MarshalIndent(t, "", "  ")
	if err := WriteFileAtomic(filepath.Join(stateDir, TrustFile), append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("provisioning: pin trust: %w", err)
	}
	return nil
}

// CheckTrust checks the bundle against prev, the trust in force (nil: none
// yet, anything goes): another CA or config key is ErrTrustChanged unless
// replace. It returns the bundle's trust, to pin once the bundle is taken.
func (b *Bundle) CheckTrust(id *Identity, prev *Trust, replace bool) (Trust, error) {
	t, err := b.Trust(id)
	if err != nil {
		return t, err
	}
	if prev != nil && !replace && !prev.Same(t) {
		caSame := prev.Same(Trust{CA: t.CA, ConfigKey: prev.ConfigKey})
		what := "CA and config-signing key"
		switch {
		case caSame:
			what = "config-signing key"
		case prev.ConfigKey == t.ConfigKey:
			what = "CA"
		}
		return t, fmt.Errorf("%w: another %s than the one in force", ErrTrustChanged, what)
	}
	return t, nil
}

// CheckState checks a (Check-ed) bundle against what stateDir has in force
// for id: the pinned trust (see CheckTrust) and, while the config key stays
// the same, the config in force: an initial event with the same serial but
// other bytes is ErrSameSerial (refused rather than stored and never put in
// force; an older serial is fine, the newer config in force stays). It
// returns the bundle's trust and whether it differs from the pinned one.
func (b *Bundle) CheckState(stateDir string, id *Identity, replace bool) (Trust, bool, error) {
	prev, err := LoadTrust(stateDir, id)
	if err != nil {
		return Trust{}, false, err
	}
	t, err := b.CheckTrust(id, prev, replace)
	if err != nil {
		return t, false, err
	}
	changed := prev != nil && !prev.Same(t)
	if len(b.Config) > 0 {
		key, _ := ParseConfigKey(b.ConfigKey)
		raw, rerr := os.ReadFile(filepath.Join(stateDir, RemoteConfigFile))
		if rerr == nil {
			cur, verr := protocol.VerifyConfig(raw, key)
			in, ierr := protocol.DecodeConfig(b.Config)
			if verr == nil && ierr == nil && cur.Serial == in.Serial && !sameConfig(raw, b.Config) {
				return t, changed, fmt.Errorf("%w (serial %d)", ErrSameSerial, in.Serial)
			}
		}
	}
	return t, changed, nil
}

// sameConfig: a and b are the same signed Config, whatever their spacing.
func sameConfig(a, b []byte) bool {
	ca, err1 := protocol.Canonical(a)
	cb, err2 := protocol.Canonical(b)
	da, err3 := protocol.DecodeConfig(a)
	db, err4 := protocol.DecodeConfig(b)
	return err1 == nil && err2 == nil && err3 == nil && err4 == nil && bytes.Equal(ca, cb) && da.Sig == db.Sig
}
