package provisioning

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// ErrUnchanged: the payload is the config already in force (the retained
// config is delivered again at every reconnect); not a rejection.
var ErrUnchanged = errors.New("provisioning: config already in force")

// ErrUnbound: a Config without deviceId offered to a kiosk that has
// accepted a device-bound one (and so refuses unbound ones from then on).
var ErrUnbound = errors.New("provisioning: config not bound to this device")

// ConfigStore keeps the signed remote Config in force and its payload on
// disk, so that it survives restarts. A payload replaces it only when its
// signature verifies with the provisioned key, its serial is above the one
// in force and it has not expired; and, once the store knows its device
// (ForDevice), when it is not bound to another device, nor unbound after a
// bound one was accepted (the persisted payload is the memory of that: all
// later ones are bound too).
type ConfigStore struct {
	path   string
	pub    ed25519.PublicKey
	device string

	mu  sync.Mutex
	cur *protocol.Config
	raw []byte
}

// NewConfigStore returns an empty store persisting in stateDir.
func NewConfigStore(stateDir string, pub ed25519.PublicKey) *ConfigStore {
	return &ConfigStore{path: filepath.Join(stateDir, RemoteConfigFile), pub: pub}
}

// ForDevice makes the store check Configs' deviceId against device; it
// returns s.
func (s *ConfigStore) ForDevice(device string) *ConfigStore {
	s.device = device
	return s
}

// checkDevice: err when c is for another device, or unbound while cur
// (the config in force) is bound.
func (s *ConfigStore) checkDevice(c protocol.Config, cur *protocol.Config) error {
	if s.device == "" {
		return nil
	}
	if c.DeviceID != "" && c.DeviceID != s.device {
		return fmt.Errorf("%w: config serial %d is for %q, this kiosk is %q", ErrWrongDevice, c.Serial, c.DeviceID, s.device)
	}
	if c.DeviceID == "" && cur != nil && cur.DeviceID != "" {
		return fmt.Errorf("%w: config serial %d has no deviceId, the one in force (serial %d) is bound to %q",
			ErrUnbound, c.Serial, cur.Serial, cur.DeviceID)
	}
	return nil
}

// Load reads the persisted config, verifying it again (the key may have
// changed with a new bundle). A missing file is no error; a file that no
// longer verifies is reported and left out of force. Expiry is not judged
// here: an expired config stays the floor for serials, and the event's own
// window keeps taps out.
func (s *ConfigStore) Load() error {
	raw, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("provisioning: remote config: %w", err)
	}
	c, err := protocol.VerifyConfig(raw, s.pub)
	if err != nil {
		return fmt.Errorf("provisioning: persisted remote config %s: %w", s.path, err)
	}
	if err := s.checkDevice(c, nil); err != nil {
		return fmt.Errorf("provisioning: persisted remote config %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.cur, s.raw = &c, raw
	s.mu.Unlock()
	return nil
}

// Current returns the config in force, if any.
func (s *ConfigStore) Current() (protocol.Config, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return protocol.Config{}, false
	}
	return *s.cur, true
}

// Offer checks payload and, when it is acceptable, persists it (write temp,
// fsync, rename) and puts it in force. Errors: protocol.ErrBadSig (and the
// decoding errors), ErrWrongDevice and ErrUnbound (see ForDevice),
// protocol.ErrOldSerial, protocol.ErrNotInForce (expired), ErrUnchanged; the
// config in force then stays.
func (s *ConfigStore) Offer(payload []byte, now time.Time) (protocol.Config, error) {
	c, err := protocol.VerifyConfig(payload, s.pub)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkDevice(c, s.cur); err != nil {
		return c, err
	}
	if s.cur != nil && c.Serial <= s.cur.Serial {
		if c.Serial == s.cur.Serial && bytes.Equal(payload, s.raw) {
			return c, ErrUnchanged
		}
		return c, fmt.Errorf("provisioning: config serial %d, in force %d: %w", c.Serial, s.cur.Serial, protocol.ErrOldSerial)
	}
	if c.ValidUntil != "" {
		if until, err := protocol.ParseTime(c.ValidUntil); err == nil && !now.Before(until) {
			return c, fmt.Errorf("provisioning: config serial %d expired at %s: %w", c.Serial, c.ValidUntil, protocol.ErrNotInForce)
		}
	}
	if err := WriteFileAtomic(s.path, payload, 0o600); err != nil {
		return c, fmt.Errorf("provisioning: persist remote config: %w", err)
	}
	s.cur, s.raw = &c, bytes.Clone(payload)
	return c, nil
}
