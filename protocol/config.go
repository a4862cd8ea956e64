package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Periods of a check-in constraint.
const (
	PeriodAbsolute = "ABSOLUTE"
	PeriodDay      = "DAY"
	PeriodWeek     = "WEEK"
	PeriodMonth    = "MONTH"
	PeriodQuarter  = "QUARTER"
	PeriodYear     = "YEAR"
)

// ValidPeriod reports whether p is a constraint period.
func ValidPeriod(p string) bool {
	switch p {
	case PeriodAbsolute, PeriodDay, PeriodWeek, PeriodMonth, PeriodQuarter, PeriodYear:
		return true
	}
	return false
}

// Constraint is how often a passholder may save for one event.
type Constraint struct {
	Period string `json:"period"`
	Volume int    `json:"volume"`
}

// Config is central's signed, retained configuration for one kiosk.
type Config struct {
	V      int   `json:"v"`
	Serial int64 `json:"serial"`
	// DeviceID, when set, binds the Config to one kiosk (inside what is
	// signed): another kiosk refuses it, and a kiosk that has accepted a
	// bound Config refuses an unbound one from then on. Added, optional.
	DeviceID     string     `json:"deviceId,omitempty"`
	EventID      string     `json:"eventId"`
	EventTitle   string     `json:"eventTitle,omitempty"`
	CounterID    string     `json:"counterId,omitempty"`
	Points       int        `json:"points"`
	Constraint   Constraint `json:"constraint"`
	ValidFrom    string     `json:"validFrom,omitempty"`
	ValidUntil   string     `json:"validUntil,omitempty"`
	CheckinCode  string     `json:"checkinCode,omitempty"`
	BlockedChips []string   `json:"blockedChips,omitempty"`
	IssuedAt     string     `json:"issuedAt,omitempty"`
	Sig          string     `json:"sig,omitempty"`
}

// DecodeConfig parses a Config and checks its fields; it does not check the
// signature (see VerifyConfig).
func DecodeConfig(b []byte) (Config, error) {
	var c Config
	if err := decode(b, &c); err != nil {
		return Config{}, err
	}
	switch {
	case c.Serial <= 0:
		return c, missing("serial")
	case c.EventID == "":
		return c, missing("eventId")
	case c.DeviceID != "" && !ValidDeviceID(c.DeviceID):
		return c, fmt.Errorf("protocol: deviceId %q: %w", c.DeviceID, ErrInvalid)
	case !ValidPeriod(c.Constraint.Period):
		return c, fmt.Errorf("protocol: constraint.period %q: %w", c.Constraint.Period, ErrInvalid)
	case c.Constraint.Volume < 1:
		return c, fmt.Errorf("protocol: constraint.volume %d: %w", c.Constraint.Volume, ErrInvalid)
	case c.Points < 0:
		return c, fmt.Errorf("protocol: points %d: %w", c.Points, ErrInvalid)
	}
	for _, f := range []struct{ name, v string }{{"validFrom", c.ValidFrom}, {"validUntil", c.ValidUntil}, {"issuedAt", c.IssuedAt}} {
		if f.v != "" {
			if _, err := ParseTime(f.v); err != nil {
				return c, fmt.Errorf("protocol: %s: %w", f.name, err)
			}
		}
	}
	for _, chip := range c.BlockedChips {
		if err := CheckChip(chip); err != nil && !errors.Is(err, ErrRandomUID) {
			return c, fmt.Errorf("protocol: blockedChips: %w", err)
		}
	}
	return c, nil
}

// InForce reports whether now lies in the config's validity window (an empty
// bound is open).
func (c Config) InForce(now time.Time) bool {
	if c.ValidFrom != "" {
		if t, err := ParseTime(c.ValidFrom); err != nil || now.Before(t) {
			return false
		}
	}
	if c.ValidUntil != "" {
		if t, err := ParseTime(c.ValidUntil); err != nil || !now.Before(t) {
			return false
		}
	}
	return true
}

// Canonical returns the bytes a Config signature covers: the payload without
// "sig", keys sorted at every level, no spaces, numbers as written.
func Canonical(payload []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("protocol: canonical: %w: %v", ErrMalformed, err)
	}
	delete(m, "sig")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("protocol: canonical: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// SignConfig signs c with key and returns the signed wire form.
func SignConfig(c Config, key ed25519.PrivateKey) ([]byte, error) {
	c.V = Version
	c.Sig = ""
	canon, err := Canonical(encode(c))
	if err != nil {
		return nil, err
	}
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, canon))
	return encode(c), nil
}

// VerifyConfig decodes payload and checks its signature against pub.
func VerifyConfig(payload []byte, pub ed25519.PublicKey) (Config, error) {
	c, err := DecodeConfig(payload)
	if err != nil {
		return Config{}, err
	}
	if c.Sig == "" {
		return Config{}, fmt.Errorf("protocol: config unsigned: %w", ErrBadSig)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Config{}, fmt.Errorf("protocol: config sig encoding: %w", ErrBadSig)
	}
	canon, err := Canonical(payload)
	if err != nil {
		return Config{}, err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, canon, sig) {
		return Config{}, fmt.Errorf("protocol: config serial %d: %w", c.Serial, ErrBadSig)
	}
	return c, nil
}
