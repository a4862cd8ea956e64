// Package protocol holds the kiosk ⇄ central MQTT contract, version 1: topic
// names, the four payloads, and their validation. Both the kiosk and the
// reference ingest use it, so the contract is written down once.
//
// Every decoder here reads bytes from the network and therefore never panics:
// it returns an error wrapping one of the sentinel errors below, which callers
// count and log.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the contract version carried in every payload's "v".
const Version = 1

// MaxPayload is the largest payload either side accepts.
const MaxPayload = 4096

// DefaultPrefix is the default topic prefix.
const DefaultPrefix = "kiosk/v1"

// Errors callers branch on (with errors.Is).
var (
	ErrTooLarge   = errors.New("payload larger than 4 KiB")
	ErrMalformed  = errors.New("payload is not a JSON object")
	ErrVersion    = errors.New("unsupported payload version")
	ErrMissing    = errors.New("required field missing")
	ErrInvalid    = errors.New("field has an invalid value")
	ErrBadTopic   = errors.New("topic does not match the contract")
	ErrBadDevice  = errors.New("invalid device id")
	ErrBadChip    = errors.New("invalid chip number")
	ErrRandomUID  = errors.New("random UID identifies nobody")
	ErrBadSig     = errors.New("config signature invalid")
	ErrOldSerial  = errors.New("config serial not newer than the one in force")
	ErrNotInForce = errors.New("config outside its validity window")
)

// TimeLayout is the wire form of instants: UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime renders t in the wire form.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime reads an instant in RFC 3339 form (the wire form is one).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("protocol: time %q: %w", s, ErrInvalid)
	}
	return t, nil
}

// ValidDeviceID reports whether id is a device id of the contract:
// ^[a-z0-9][a-z0-9-]{2,63}$, checked by hand (central checks one per
// message; with ValidID's, the regular expression was a twentieth of the
// ingest benchmark's processor time). TestValidIDsMatchPatterns holds it
// to the pattern.
func ValidDeviceID(id string) bool {
	if len(id) < 3 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

// CheckChip validates a chip number: upper-case hex of 4, 7 or 10 bytes, and
// not a 4-byte random UID (first byte 08).
func CheckChip(chip string) error {
	switch len(chip) {
	case 8, 14, 20:
	default:
		return fmt.Errorf("protocol: chip number of %d characters: %w", len(chip), ErrBadChip)
	}
	for i := 0; i < len(chip); i++ {
		c := chip[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return fmt.Errorf("protocol: chip number not upper-case hex: %w", ErrBadChip)
		}
	}
	if len(chip) == 8 && chip[:2] == "08" {
		return fmt.Errorf("protocol: chip number: %w", ErrRandomUID)
	}
	return nil
}

// MaskChip shortens a chip number for logs: first and last byte only
// ("04…80"), so that no log line carries a whole card number.
func MaskChip(chip string) string {
	if len(chip) <= 4 {
		return strings.Repeat("*", len(chip))
	}
	return chip[:2] + "…" + chip[len(chip)-2:]
}

// Topic kinds.
const (
	KindCheckin = "checkin"
	KindResult  = "result"
	KindStatus  = "status"
	KindConfig  = "config"
)

// Topic returns prefix/device/kind.
func Topic(prefix, device, kind string) string { return prefix + "/" + device + "/" + kind }

// ParseTopic splits a topic under prefix into its device id and kind.
func ParseTopic(prefix, topic string) (device, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadTopic)
	}
	device, kind, ok = strings.Cut(rest, "/")
	if !ok || strings.Contains(kind, "/") {
		return "", "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadTopic)
	}
	if !ValidDeviceID(device) {
		return "", "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadDevice)
	}
	switch kind {
	case KindCheckin, KindResult, KindStatus, KindConfig:
	default:
		return "", "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadTopic)
	}
	return device, kind, nil
}

// decode checks size, JSON shape and version, then unmarshals into v.
//
// One pass in the common case: the payload is unmarshalled once and its
// version read from v. Only a payload that fails or carries another
// version is parsed again, for its version alone, so that a missing or
// unsupported version is reported as such before anything else (a future
// version may change a field's type), as a two-pass decode would. Checkins
// arrive at central by the thousand a second, and the second pass was half
// of their decoding.
func decode(b []byte, v versioned) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("protocol: %d bytes: %w", len(b), ErrTooLarge)
	}
	err := json.Unmarshal(b, v)
	if err == nil && v.version() == Version {
		return nil
	}
	var head struct {
		V *int `json:"v"`
	}
	if herr := json.Unmarshal(b, &head); herr != nil {
		return fmt.Errorf("protocol: %w: %v", ErrMalformed, herr)
	}
	if head.V == nil {
		return fmt.Errorf("protocol: v: %w", ErrMissing)
	}
	if *head.V != Version {
		return fmt.Errorf("protocol: v=%d: %w", *head.V, ErrVersion)
	}
	if err != nil {
		return fmt.Errorf("protocol: %w: %v", ErrMalformed, err)
	}
	return nil
}

// decodePlain is decode with a fast path: fast's answer where b is in its
// plain shape (wire.go) and of this version, decode's otherwise (every
// error, and any other version, is decode's to report).
func decodePlain[T any, P interface {
	*T
	versioned
}](b []byte, fast func([]byte) (T, bool)) (T, error) {
	if len(b) <= MaxPayload {
		if v, ok := fast(b); ok && P(&v).version() == Version {
			return v, nil
		}
	}
	var v T
	if err := decode(b, P(&v)); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// versioned is a payload of the contract: every one carries "v".
type versioned interface{ version() int }

func (c *Checkin) version() int      { return c.V }
func (r *Result) version() int       { return r.V }
func (s *Status) version() int       { return s.V }
func (c *Config) version() int       { return c.V }
func (r *RenewRequest) version() int { return r.V }
func (r *RenewReply) version() int   { return r.V }

func missing(field string) error { return fmt.Errorf("protocol: %s: %w", field, ErrMissing) }

// encode marshals without HTML escaping (the contract's payloads are read by
// machines and shown on screens, not embedded in HTML).
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own plain structs reach here; they always encode.
		panic(fmt.Sprintf("protocol: encode %T: %v", v, err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
