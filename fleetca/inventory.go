// Package fleetca is the fleet CA's life cycle at central: the inventory of
// every certificate the CA issued, revocation and the CRL that the broker
// reads, the rule of one certificate per device, and the renewal signer
// (`kioskctl ca serve`) that renews kiosks' certificates over MQTT. It
// builds on provisioning's CA (keys, signing); a kiosk never needs it: the
// kiosk side of renewal checks what it receives with provisioning's bundle
// checks against its pinned CA.
//
// The CA directory (`kioskctl ca init -dir DIR`) holds, besides the keys:
//
//   - issued.json, the inventory: one record per issued certificate
//     (serial, CN, role, validity, key, how it was issued, the certificate
//     itself) and its revocation (when, why). It is rewritten whole, under
//     a lock (.issued.lock, flock), by an atomic replace (temporary file,
//     fsync, rename): a power cut leaves the old or the new one. A
//     certificate is handed out only once its record is on disk.
//   - crl.pem, the CRL: every revoked certificate not yet expired, signed by
//     the CA, rewritten on every revocation. The broker reads a copy
//     (crlfile) and rereads it on SIGHUP.
package fleetca

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

// Files fleetca keeps in the CA directory.
const (
	InventoryFile = "issued.json"
	CRLFile       = "crl.pem"
	lockFile      = ".issued.lock"
)

// Roles of certificates.
const (
	RoleKiosk   = "kiosk"   // a device's client certificate (CN = device id)
	RoleService = "service" // a central service's client certificate (CN with a dot)
	RoleServer  = "server"  // the broker's server certificate
)

// How a certificate came to be (Record.Via).
const (
	ViaProvision  = "provision"
	ViaRenewal    = "renewal"
	ViaClientCert = "client-cert"
	ViaServerCert = "server-cert"
	ViaRecord     = "record" // issued before the inventory, recorded afterwards
)

// Record is one issued certificate.
type Record struct {
	Serial    string    `json:"serial"` // lower-case hex
	CN        string    `json:"cn"`
	Role      string    `json:"role"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Key is the certificate's public key (provisioning.KeyID).
	Key      string    `json:"key"`
	Via      string    `json:"via"`
	IssuedAt time.Time `json:"issuedAt"`
	// RevokedAt and Reason are set once it is revoked.
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	// Cert is the certificate (PEM): public, kept so that a renewal whose
	// answer was lost can be answered again with the same certificate.
	Cert string `json:"cert"`
}

// States of a record (Record.State).
const (
	StateValid    = "valid"
	StateExpired  = "expired"
	StateRevoked  = "revoked"
	StateNotYet   = "not-yet-valid"
	inventoryV    = 1
	inventoryPerm = 0o600
)

// State is the record's state at now.
func (r Record) State(now time.Time) string {
	switch {
	case r.RevokedAt != nil:
		return StateRevoked
	case !now.Before(r.NotAfter):
		return StateExpired
	case now.Before(r.NotBefore):
		return StateNotYet
	}
	return StateValid
}

// live: not revoked and not expired (a certificate not valid yet counts:
// it will be).
func (r Record) live(now time.Time) bool { return r.RevokedAt == nil && now.Before(r.NotAfter) }

// DaysLeft is the whole days until the certificate expires.
func (r Record) DaysLeft(now time.Time) int {
	return provisioning.DaysLeft(&x509.Certificate{NotAfter: r.NotAfter}, now)
}

// String is the record as a technician reads it.
func (r Record) String() string {
	return fmt.Sprintf("%s (%s %s, until %s)", r.Serial, r.Role, r.CN, r.NotAfter.Format(time.DateOnly))
}

// Inventory is the CA directory's record of what it issued.
type Inventory struct {
	V int `json:"v"`
	// CRLNumber is the number of the last CRL written (cRLNumber grows).
	CRLNumber int64    `json:"crlNumber"`
	Certs     []Record `json:"certs"`
}

// Live returns the records of cn that are neither revoked nor expired,
// the one that expires last first.
func (inv *Inventory) Live(cn string, now time.Time) []*Record {
	var out []*Record
	for i := range inv.Certs {
		if r := &inv.Certs[i]; r.CN == cn && r.live(now) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b *Record) int { return b.NotAfter.Compare(a.NotAfter) })
	return out
}

// Serial returns the record with serial s (hex, any case, colons allowed).
func (inv *Inventory) Serial(s string) *Record {
	s = NormalizeSerial(s)
	for i := range inv.Certs {
		if inv.Certs[i].Serial == s {
			return &inv.Certs[i]
		}
	}
	return nil
}

// NormalizeSerial reads a serial as written by `ca list`, openssl
// (colons, upper case) or with 0x.
func NormalizeSerial(s string) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X"))
	s = strings.ReplaceAll(s, ":", "")
	return strings.TrimLeft(s, "0")
}

// SerialHex is how the inventory writes a certificate's serial.
func SerialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// ErrInventory: issued.json cannot be read.
var ErrInventory = errors.New("fleetca: inventory")

// LoadInventory reads dir's inventory; a CA directory without one (made
// before there was an inventory) has an empty one.
func LoadInventory(dir string) (*Inventory, error) {
	data, err := os.ReadFile(filepath.Join(dir, InventoryFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Inventory{V: inventoryV}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInventory, err)
	}
	var inv Inventory
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInventory, InventoryFile, err)
	}
	if inv.V != inventoryV {
		return nil, fmt.Errorf("%w: %s has version %d, want %d", ErrInventory, InventoryFile, inv.V, inventoryV)
	}
	return &inv, nil
}

func saveInventory(dir string, inv *Inventory) error {
	inv.V = inventoryV
	out, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInventory, err)
	}
	if err := provisioning.WriteFileAtomic(filepath.Join(dir, InventoryFile), append(out, '\n'), inventoryPerm); err != nil {
		return fmt.Errorf("%w: write: %v", ErrInventory, err)
	}
	return nil
}

// withLock runs fn holding dir's inventory lock (flock: also against other
// processes, e.g. `ca revoke` while `ca serve` runs).
func withLock(dir string, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("%w: lock: %v", ErrInventory, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%w: lock: %v", ErrInventory, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// recordOf makes the record of a certificate just issued.
func recordOf(certPEM []byte, role, via string, now time.Time) (Record, error) {
	c, err := provisioning.ParseCertPEM(certPEM)
	if err != nil {
		return Record{}, fmt.Errorf("fleetca: issued certificate: %w", err)
	}
	return Record{Serial: SerialHex(c), CN: c.Subject.CommonName, Role: role, NotBefore: c.NotBefore.UTC(),
		NotAfter: c.NotAfter.UTC(), Key: provisioning.KeyID(c.PublicKey), Via: via, IssuedAt: now.UTC(),
		Cert: string(certPEM)}, nil
}
