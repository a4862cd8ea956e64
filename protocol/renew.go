package protocol

import (
	"encoding/pem"
	"fmt"
	"strings"
)

// Renewal: a kiosk renews its client certificate over its own authenticated
// link, without a visit. From 30 days before its certificate expires it
// publishes a RenewRequest (a CSR for the key it already has) on P/D/csr;
// central's signer answers with a RenewReply on P/D/cert: the new
// certificate, or an error code. Neither is retained; both are QoS 1, so
// an answer waits in the kiosk's persistent session while it is away.
//
// These two topics are an addition to contract v1: a central without a
// signer never answers, and the kiosk keeps its certificate (and warns).
const (
	KindCSR  = "csr"  // kiosk → central: RenewRequest
	KindCert = "cert" // central → kiosk: RenewReply
)

// Error codes of a RenewReply.
const (
	// RenewNoCertificate: the inventory has no valid certificate of this
	// device (unknown, expired or revoked): re-provision it.
	RenewNoCertificate = "no-valid-certificate"
	// RenewRevoked: the device's certificate is revoked.
	RenewRevoked = "revoked"
	// RenewKeyMismatch: the CSR's key is not the key of the device's
	// current certificate (renewal never changes the key).
	RenewKeyMismatch = "key-mismatch"
	// RenewBadRequest: the CSR does not parse, its signature fails, or its
	// CN is not the device of the topic.
	RenewBadRequest = "bad-request"
	// RenewUnavailable: the signer could not sign now; ask again later.
	RenewUnavailable = "unavailable"
)

// RenewRequest is published by a kiosk on P/D/csr.
type RenewRequest struct {
	V int `json:"v"`
	// CSR is a PEM CERTIFICATE REQUEST, CN = the device id, for the key of
	// the kiosk's current certificate.
	CSR string `json:"csr"`
}

// RenewReply is central's answer on P/D/cert: either Cert or Error.
type RenewReply struct {
	V int `json:"v"`
	// Cert is the new client certificate (PEM CERTIFICATE), signed by the
	// fleet CA directly. No chain travels with it: the kiosk verifies it
	// against the CA pinned at provisioning, never against what a reply
	// brings.
	Cert string `json:"cert,omitempty"`
	// Error is one of the Renew* codes (a newer signer may send others);
	// Message says more, for the kiosk's log.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// Encode returns the wire form.
func (r RenewRequest) Encode() []byte { r.V = Version; return encode(r) }

// Encode returns the wire form.
func (r RenewReply) Encode() []byte { r.V = Version; return encode(r) }

// DecodeRenewRequest parses a RenewRequest; its CSR is checked to be one
// PEM CERTIFICATE REQUEST block (its contents are the signer's to judge).
func DecodeRenewRequest(b []byte) (RenewRequest, error) {
	var r RenewRequest
	if err := decode(b, &r); err != nil {
		return RenewRequest{}, err
	}
	if r.CSR == "" {
		return r, missing("csr")
	}
	if err := onePEM(r.CSR, "CERTIFICATE REQUEST"); err != nil {
		return r, fmt.Errorf("protocol: csr: %w", err)
	}
	return r, nil
}

// maxMessage bounds a RenewReply's message.
const maxMessage = 512

// DecodeRenewReply parses a RenewReply: exactly one of cert (one PEM
// CERTIFICATE block) and error (a code: lower-case letters and dashes).
func DecodeRenewReply(b []byte) (RenewReply, error) {
	var r RenewReply
	if err := decode(b, &r); err != nil {
		return RenewReply{}, err
	}
	switch {
	case r.Cert == "" && r.Error == "":
		return r, missing("cert or error")
	case r.Cert != "" && r.Error != "":
		return r, fmt.Errorf("protocol: cert and error together: %w", ErrInvalid)
	case r.Error != "" && !errorCode(r.Error):
		return r, fmt.Errorf("protocol: error %q: %w", r.Error, ErrInvalid)
	case len(r.Message) > maxMessage:
		return r, fmt.Errorf("protocol: message of %d bytes: %w", len(r.Message), ErrInvalid)
	}
	if r.Cert != "" {
		if err := onePEM(r.Cert, "CERTIFICATE"); err != nil {
			return r, fmt.Errorf("protocol: cert: %w", err)
		}
	}
	return r, nil
}

// RenewTopicDevice returns D of a renewal topic P/D/kind (the
// signer reads P/+/csr).
func RenewTopicDevice(prefix, topic, kind string) (string, error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadTopic)
	}
	device, k, ok := strings.Cut(rest, "/")
	if !ok || k != kind {
		return "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadTopic)
	}
	if !ValidDeviceID(device) {
		return "", fmt.Errorf("protocol: topic %q: %w", topic, ErrBadDevice)
	}
	return device, nil
}

func errorCode(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// onePEM checks that s is exactly one PEM block of type typ, with nothing
// but white space around it.
func onePEM(s, typ string) error {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return fmt.Errorf("no PEM block: %w", ErrInvalid)
	}
	if block.Type != typ {
		return fmt.Errorf("PEM block %q, want %q: %w", block.Type, typ, ErrInvalid)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return fmt.Errorf("text after the PEM block: %w", ErrInvalid)
	}
	return nil
}
