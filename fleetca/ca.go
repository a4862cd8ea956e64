package fleetca

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// DefaultCRLDays is how long a CRL written here stays current (its
// nextUpdate). Mosquitto (OpenSSL) refuses every client once the CRL it
// holds is past its nextUpdate, and nothing here depends on a short one
// (the broker rereads the file only on SIGHUP, whatever the date says): so
// it is long, and `ca list` and `ca serve` warn a month before.
const DefaultCRLDays = 365

// crlWarn is when `ca list` and the signer start warning about the CRL.
const crlWarn = 30 * 24 * time.Hour

// Errors callers branch on.
var (
	// ErrHasCertificate: the device already has a valid certificate; only
	// `provision -replace` issues another (and revokes it).
	ErrHasCertificate = errors.New("fleetca: the device already has a valid certificate")
	// ErrNotFound: no certificate with that serial or CN in the inventory.
	ErrNotFound = errors.New("fleetca: no such certificate in the inventory")
	// ErrNoneLive: certificates were found, but every one is already
	// revoked or expired.
	ErrNoneLive = errors.New("fleetca: no certificate left to revoke")
	// ErrAmbiguous: the name is both a CN and a serial in the inventory.
	ErrAmbiguous = errors.New("fleetca: both a device and a serial")
)

// CA is the fleet CA with its inventory. The embedded provisioning.CA's
// issuing methods are shadowed by ones that record what they issue (use
// them; the embedded ones record nothing). Methods are safe for use by
// several goroutines and processes: each change of the inventory re-reads
// it under the directory's lock.
type CA struct {
	*provisioning.CA
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
	// CRLDays is the validity of the CRLs it writes; 0: DefaultCRLDays.
	CRLDays int
}

// Init creates a fleet CA in dir (provisioning.InitCA), an empty inventory
// and an empty CRL, so that a broker configured with it starts.
func Init(dir, name string, now time.Time, rnd io.Reader) (*CA, error) {
	pca, err := provisioning.InitCA(dir, name, now, rnd)
	if err != nil {
		return nil, err
	}
	c := &CA{CA: pca, Now: func() time.Time { return now }, Rand: rnd}
	if _, err := c.WriteCRL(); err != nil {
		return nil, err
	}
	c.Now = nil
	return c, nil
}

// Open loads the fleet CA of dir.
func Open(dir string) (*CA, error) {
	pca, err := provisioning.LoadCA(dir)
	if err != nil {
		return nil, err
	}
	return &CA{CA: pca}, nil
}

func (c *CA) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *CA) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

// Inventory reads the inventory as it is now.
func (c *CA) Inventory() (*Inventory, error) { return LoadInventory(c.Dir) }

// update changes the inventory under the lock: fn gets it as on disk; the
// inventory is saved when fn succeeds, and the CRL written after it when fn
// says revocations changed.
func (c *CA) update(fn func(inv *Inventory, now time.Time) (crl bool, err error)) error {
	return withLock(c.Dir, func() error {
		inv, err := LoadInventory(c.Dir)
		if err != nil {
			return err
		}
		now := c.now()
		crl, err := fn(inv, now)
		if err != nil {
			return err
		}
		if !crl {
			return saveInventory(c.Dir, inv)
		}
		// The inventory first: a CRL that failed is written again by the next
		// `ca crl`; a CRL ahead of its inventory would be undone by it.
		inv.CRLNumber++
		if err := saveInventory(c.Dir, inv); err != nil {
			return err
		}
		der, err := c.signCRL(inv, now)
		if err != nil {
			return fmt.Errorf("%w (the inventory has it; run `kioskctl ca crl -dir %s`)", err, c.Dir)
		}
		if err := provisioning.WriteFileAtomic(filepath.Join(c.Dir, CRLFile), der, 0o644); err != nil {
			return fmt.Errorf("fleetca: write %s: %w (the inventory has it; run `kioskctl ca crl -dir %s`)", CRLFile, err, c.Dir)
		}
		return nil
	})
}

// Provision is provisioning's Provision with the rule of one certificate
// per device: a device that has a live certificate in the inventory
// (neither revoked nor expired) gets no other (ErrHasCertificate, naming
// it) unless replace, which revokes the live ones (reason superseded) once
// the new one is recorded. It returns the bundle and what it revoked; the
// CRL is rewritten when it revoked anything.
func (c *CA) Provision(r provisioning.ProvisionRequest, replace bool) (*provisioning.Bundle, []Record, error) {
	csr, err := provisioning.ParseCSR(r.CSR)
	if err != nil {
		return nil, nil, err
	}
	dev := csr.Subject.CommonName
	var b *provisioning.Bundle
	var revoked []Record
	err = c.update(func(inv *Inventory, now time.Time) (bool, error) {
		live := inv.Live(dev, now)
		if len(live) > 0 && !replace {
			return false, fmt.Errorf("%w: %s has %s; `provision -replace` issues a new one and revokes it", ErrHasCertificate, dev, describe(live))
		}
		if r.Now.IsZero() {
			r.Now = now
		}
		if r.Rand == nil {
			r.Rand = c.rand()
		}
		if b, err = c.CA.Provision(r); err != nil {
			return false, err
		}
		rec, err := recordOf([]byte(b.ClientCert), RoleKiosk, ViaProvision, now)
		if err != nil {
			return false, err
		}
		for _, old := range live {
			revoke(old, "superseded", now)
			revoked = append(revoked, *old)
		}
		inv.Certs = append(inv.Certs, rec)
		return len(live) > 0, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return b, revoked, nil
}

// IssueClient is provisioning's IssueClient, recorded (role service). others
// are the name's other live certificates: a service's certificate is
// replaced with overlap (install the new one, then revoke the old).
func (c *CA) IssueClient(name string, days int) (certPEM, keyPEM []byte, others []Record, err error) {
	err = c.update(func(inv *Inventory, now time.Time) (bool, error) {
		if certPEM, keyPEM, err = c.CA.IssueClient(name, days, now, c.rand()); err != nil {
			return false, err
		}
		others = values(inv.Live(name, now))
		return false, c.add(inv, certPEM, RoleService, ViaClientCert, now)
	})
	return certPEM, keyPEM, others, err
}

// IssueServer is provisioning's IssueServer, recorded (role server, CN the
// first host).
func (c *CA) IssueServer(hosts []string, days int) (certPEM, keyPEM []byte, others []Record, err error) {
	err = c.update(func(inv *Inventory, now time.Time) (bool, error) {
		if certPEM, keyPEM, err = c.CA.IssueServer(hosts, days, now, c.rand()); err != nil {
			return false, err
		}
		if len(hosts) > 0 {
			others = values(inv.Live(hosts[0], now))
		}
		return false, c.add(inv, certPEM, RoleServer, ViaServerCert, now)
	})
	return certPEM, keyPEM, others, err
}

func (c *CA) add(inv *Inventory, certPEM []byte, role, via string, now time.Time) error {
	rec, err := recordOf(certPEM, role, via, now)
	if err != nil {
		return err
	}
	inv.Certs = append(inv.Certs, rec)
	return nil
}

// Record adds certificates this CA issued before it kept an inventory (a
// bundle's clientCert, a service's .crt) to it, so that the rules of one
// certificate per device and of renewal know them. A certificate of
// another CA is refused; one already recorded is skipped. The role follows
// from the certificate: server authentication → server, a device id as CN
// → kiosk, else service.
func (c *CA) Record(certPEM []byte) (Record, bool, error) {
	cert, err := provisioning.ParseCertPEM(certPEM)
	if err != nil {
		return Record{}, false, fmt.Errorf("fleetca: record: %w", err)
	}
	if err := cert.CheckSignatureFrom(c.Cert); err != nil {
		return Record{}, false, fmt.Errorf("fleetca: record %s: not issued by this CA: %w", cert.Subject.CommonName, err)
	}
	role := RoleService
	switch {
	case hasEKU(cert, x509.ExtKeyUsageServerAuth):
		role = RoleServer
	case protocol.ValidDeviceID(cert.Subject.CommonName):
		role = RoleKiosk
	}
	var rec Record
	added := false
	err = c.update(func(inv *Inventory, now time.Time) (bool, error) {
		if r := inv.Serial(SerialHex(cert)); r != nil {
			rec = *r
			return false, nil
		}
		var err error
		if rec, err = recordOf(certPEM, role, ViaRecord, now); err != nil {
			return false, err
		}
		inv.Certs = append(inv.Certs, rec)
		added = true
		return false, nil
	})
	return rec, added, err
}

func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == u {
			return true
		}
	}
	return false
}

// Reasons for revocation (RFC 5280 5.3.1), as `ca revoke -reason` takes them.
var Reasons = map[string]int{
	"unspecified":            0,
	"key-compromise":         1,
	"affiliation-changed":    3,
	"superseded":             4,
	"cessation-of-operation": 5,
}

// ReasonNames lists Reasons for usage texts.
const ReasonNames = "unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation"

func revoke(r *Record, reason string, now time.Time) {
	t := now.UTC()
	r.RevokedAt, r.Reason = &t, reason
}

// Revoke revokes by serial (hex, as `ca list` shows it) or by CN (a device
// id or a service's name: every live certificate of it). It returns what it
// revoked and rewrites the CRL. Already revoked or expired: ErrNoneLive
// with the records found.
func (c *CA) Revoke(target, reason string) ([]Record, error) {
	if reason == "" {
		reason = "unspecified"
	}
	if _, ok := Reasons[reason]; !ok {
		return nil, fmt.Errorf("fleetca: revocation reason %q: one of %s", reason, ReasonNames)
	}
	var done []Record
	err := c.update(func(inv *Inventory, now time.Time) (bool, error) {
		byName := inv.named(target)
		bySerial := inv.Serial(target)
		var found []*Record
		switch {
		case len(byName) > 0 && bySerial != nil && !(len(byName) == 1 && byName[0] == bySerial):
			return false, fmt.Errorf("%w: %q names certificates of a device and a serial: revoke by the serial of `ca list`", ErrAmbiguous, target)
		case bySerial != nil:
			found = []*Record{bySerial}
		case len(byName) > 0:
			found = byName
		default:
			return false, fmt.Errorf("%w: %q (see `kioskctl ca list -dir %s`)", ErrNotFound, target, c.Dir)
		}
		for _, r := range found {
			if r.live(now) {
				revoke(r, reason, now)
				done = append(done, *r)
			}
		}
		if len(done) == 0 {
			return false, fmt.Errorf("%w: %s", ErrNoneLive, describe(found))
		}
		return true, nil
	})
	return done, err
}

func (inv *Inventory) named(cn string) []*Record {
	var out []*Record
	for i := range inv.Certs {
		if inv.Certs[i].CN == cn {
			out = append(out, &inv.Certs[i])
		}
	}
	return out
}

// WriteCRL writes a fresh CRL (DIR/crl.pem, valid CRLDays) and returns it
// (PEM).
func (c *CA) WriteCRL() ([]byte, error) {
	err := c.update(func(*Inventory, time.Time) (bool, error) { return true, nil })
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(c.Dir, CRLFile))
}

// signCRL is the CRL of inv: every revoked certificate that has not
// expired (an expired one is refused for its date anyway).
func (c *CA) signCRL(inv *Inventory, now time.Time) ([]byte, error) {
	days := c.CRLDays
	if days <= 0 {
		days = DefaultCRLDays
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(inv.CRLNumber), ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(time.Duration(days) * 24 * time.Hour)}
	for _, r := range inv.Certs {
		if r.RevokedAt == nil || !now.Before(r.NotAfter) {
			continue
		}
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("%w: serial %q is not hex", ErrInventory, r.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: n, RevocationTime: *r.RevokedAt, ReasonCode: Reasons[r.Reason]})
	}
	return c.SignCRL(tmpl, c.rand())
}

// LoadCRL reads and checks DIR/crl.pem against the CA.
func (c *CA) LoadCRL() (*x509.RevocationList, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, CRLFile))
	if err != nil {
		return nil, fmt.Errorf("fleetca: crl: %w (write one: kioskctl ca crl -dir %s)", err, c.Dir)
	}
	return ParseCRL(b, c.Cert)
}

// ParseCRL reads a PEM CRL and checks its signature against ca.
func ParseCRL(pemBytes []byte, ca *x509.Certificate) (*x509.RevocationList, error) {
	der := pemBytes
	if blk := pemBlock(pemBytes, "X509 CRL"); blk != nil {
		der = blk
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("fleetca: crl: %w", err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("fleetca: crl not signed by the fleet CA: %w", err)
	}
	return crl, nil
}

// CRLWarning is a sentence for the technician when crl expires within a
// month (or has): "" otherwise.
func CRLWarning(crl *x509.RevocationList, now time.Time) string {
	left := crl.NextUpdate.Sub(now)
	switch {
	case left <= 0:
		return fmt.Sprintf("the CRL expired on %s: the broker refuses every client; run `kioskctl ca crl`, copy crl.pem to the broker and reload it",
			crl.NextUpdate.Format(time.DateOnly))
	case left < crlWarn:
		return fmt.Sprintf("the CRL expires on %s (%d days): past it the broker refuses every client; run `kioskctl ca crl`, copy crl.pem to the broker and reload it",
			crl.NextUpdate.Format(time.DateOnly), int(left/(24*time.Hour)))
	}
	return ""
}

func describe(rs []*Record) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = "serial " + r.Serial
		if r.RevokedAt != nil {
			parts[i] += " (revoked " + r.RevokedAt.Format(time.DateOnly) + ")"
		} else {
			parts[i] += " (until " + r.NotAfter.Format(time.DateOnly) + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func values(rs []*Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out
}

func pemBlock(b []byte, typ string) []byte {
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil
		}
		if blk.Type == typ {
			return blk.Bytes
		}
	}
}
