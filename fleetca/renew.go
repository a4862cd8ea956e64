package fleetca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

// RenewWindow is how long before its certificate expires a kiosk renews
// (the kiosk asks from then on; the signer issues from then on).
const RenewWindow = 30 * 24 * time.Hour

// Refusals of a renewal (the signer answers them with protocol's codes).
var (
	// ErrNoLiveCertificate: the inventory has no live certificate of the
	// device: never recorded, expired, or revoked (ErrRevoked then).
	ErrNoLiveCertificate = errors.New("fleetca: renew: no valid certificate of this device in the inventory")
	// ErrRevoked: the device's certificate for this key is revoked.
	ErrRevoked = errors.New("fleetca: renew: the device's certificate is revoked")
	// ErrKeyMismatch: the CSR is for another key than the device's current
	// certificate; renewal never changes the key (a new key is a new
	// provisioning, at the box, with its pairing code).
	ErrKeyMismatch = errors.New("fleetca: renew: the CSR's key is not the current certificate's")
)

// Renewal is what Renew decided.
type Renewal struct {
	Cert []byte // PEM
	// Issued: a new certificate (recorded); else Cert is the device's
	// newest one again, issued by an earlier renewal whose answer the
	// kiosk may have missed.
	Issued bool
	Record Record
	Prev   Record // the certificate it renews
}

// Renew decides a kiosk's renewal request (a CSR checked by
// provisioning.ParseCSR, CN = device). The device's current certificate is
// its live one (neither revoked nor expired) that expires last; the CSR
// must be for that certificate's key. When that certificate has less than
// window left (0: RenewWindow) a new one is issued for the same CN and key,
// valid days (0: provisioning.DefaultCertDays), and recorded (via
// renewal); the old one stays valid until it expires, so a kiosk that
// never got the answer still connects and asks again. With more than
// window left, the current certificate is answered again (a kiosk asking
// twice, or whose answer was lost, gets the same one): a device is issued
// at most one certificate per renewal window.
func (c *CA) Renew(device string, csr *x509.CertificateRequest, days int, window time.Duration) (Renewal, error) {
	if window <= 0 {
		window = RenewWindow
	}
	if csr.Subject.CommonName != device {
		return Renewal{}, fmt.Errorf("%w: the CSR is for %q, not %q", provisioning.ErrWrongDevice, csr.Subject.CommonName, device)
	}
	key := provisioning.KeyID(csr.PublicKey)
	var out Renewal
	err := c.update(func(inv *Inventory, now time.Time) (bool, error) {
		live := inv.Live(device, now)
		if len(live) == 0 {
			for _, r := range inv.named(device) {
				if r.RevokedAt != nil && r.Key == key && now.Before(r.NotAfter) {
					return false, fmt.Errorf("%w: serial %s, %s, %s", ErrRevoked, r.Serial, r.RevokedAt.Format(time.DateOnly), r.Reason)
				}
			}
			return false, ErrNoLiveCertificate
		}
		cur := live[0]
		if cur.Role != RoleKiosk {
			return false, fmt.Errorf("%w: %s is a %s certificate", ErrNoLiveCertificate, cur.Serial, cur.Role)
		}
		if cur.Key != key {
			return false, fmt.Errorf("%w (serial %s)", ErrKeyMismatch, cur.Serial)
		}
		out.Prev = *cur
		if cur.NotAfter.Sub(now) > window {
			out.Cert, out.Record = []byte(cur.Cert), *cur
			return false, errUnchanged
		}
		pem, err := c.SignDeviceCSR(csr, days, now, c.rand())
		if err != nil {
			return false, err
		}
		if out.Record, err = recordOf(pem, RoleKiosk, ViaRenewal, now); err != nil {
			return false, err
		}
		inv.Certs = append(inv.Certs, out.Record)
		out.Cert, out.Issued = pem, true
		return false, nil
	})
	if errors.Is(err, errUnchanged) {
		err = nil
	}
	return out, err
}

// errUnchanged makes update skip the save.
var errUnchanged = errors.New("fleetca: unchanged")
