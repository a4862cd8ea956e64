package protocol

import (
	"errors"
	"strings"
	"testing"
)

const (
	testCSR  = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n"
	testCert = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"
)

// One table for both directions: what decodes, and what it encodes back to.
var renewReplyCases = []struct {
	name    string
	payload string
	want    RenewReply
	err     error
}{
	{"certificate", `{"v":1,"cert":` + jsonString(testCert) + `}`, RenewReply{V: 1, Cert: testCert}, nil},
	{"error", `{"v":1,"error":"revoked","message":"serial 1f revoked 2026-12-01"}`,
		RenewReply{V: 1, Error: RenewRevoked, Message: "serial 1f revoked 2026-12-01"}, nil},
	{"an unknown error code of a newer signer", `{"v":1,"error":"rate-limited"}`, RenewReply{V: 1, Error: "rate-limited"}, nil},
	{"neither", `{"v":1}`, RenewReply{}, ErrMissing},
	{"both", `{"v":1,"cert":` + jsonString(testCert) + `,"error":"revoked"}`, RenewReply{}, ErrInvalid},
	{"a CSR as the certificate", `{"v":1,"cert":` + jsonString(testCSR) + `}`, RenewReply{}, ErrInvalid},
	{"two certificates", `{"v":1,"cert":` + jsonString(testCert+testCert) + `}`, RenewReply{}, ErrInvalid},
	{"not PEM", `{"v":1,"cert":"hello"}`, RenewReply{}, ErrInvalid},
	{"an error code with spaces", `{"v":1,"error":"no way"}`, RenewReply{}, ErrInvalid},
	{"a long message", `{"v":1,"error":"revoked","message":"` + strings.Repeat("x", 600) + `"}`, RenewReply{}, ErrInvalid},
	{"version 2", `{"v":2,"cert":` + jsonString(testCert) + `}`, RenewReply{}, ErrVersion},
	{"no version", `{"cert":` + jsonString(testCert) + `}`, RenewReply{}, ErrMissing},
	{"not JSON", `garbage`, RenewReply{}, ErrMalformed},
	{"an array", `[1]`, RenewReply{}, ErrMalformed},
	{"too large", `{"v":1,"error":"revoked","pad":"` + strings.Repeat("x", MaxPayload) + `"}`, RenewReply{}, ErrTooLarge},
}

func jsonString(s string) string { return string(encode(s)) }

func TestRenewReply(t *testing.T) {
	for _, c := range renewReplyCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeRenewReply([]byte(c.payload))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
			again, err := DecodeRenewReply(got.Encode())
			if err != nil || again != got {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

func TestRenewRequest(t *testing.T) {
	r := RenewRequest{CSR: testCSR}
	got, err := DecodeRenewRequest(r.Encode())
	if err != nil || got.CSR != testCSR || got.V != Version {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for payload, want := range map[string]error{
		`{"v":1}`: ErrMissing,
		`{"v":1,"csr":` + jsonString(testCert) + `}`: ErrInvalid,
		`{"v":1,"csr":"x"}`:                          ErrInvalid,
		`{"v":1,"csr":7}`:                            ErrMalformed,
		`{"csr":` + jsonString(testCSR) + `}`:        ErrMissing,
	} {
		if _, err := DecodeRenewRequest([]byte(payload)); !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", payload, err, want)
		}
	}
}

func TestRenewTopicDevice(t *testing.T) {
	if d, err := RenewTopicDevice("kiosk/v1", "kiosk/v1/kiosk-a-01/csr", KindCSR); err != nil || d != "kiosk-a-01" {
		t.Fatalf("%q %v", d, err)
	}
	for _, topic := range []string{"kiosk/v1/kiosk-a-01/cert", "kiosk/v2/kiosk-a-01/csr", "kiosk/v1/Kiosk/csr",
		"kiosk/v1/kiosk-a-01/csr/x", "kiosk/v1/kiosk-a-01"} {
		if _, err := RenewTopicDevice("kiosk/v1", topic, KindCSR); err == nil {
			t.Errorf("%s accepted", topic)
		}
	}
}

// The decoders read bytes from the network: they never panic, and what
// they accept encodes back to the same message.
func FuzzDecodeRenewReply(f *testing.F) {
	for _, c := range renewReplyCases {
		f.Add([]byte(c.payload))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRenewReply(b)
		if err != nil {
			return
		}
		if again, err := DecodeRenewReply(r.Encode()); err != nil || again != r {
			t.Fatalf("accepted %q, but its encoding %q decodes to %+v, %v", b, r.Encode(), again, err)
		}
	})
}

func FuzzDecodeRenewRequest(f *testing.F) {
	f.Add(RenewRequest{CSR: testCSR}.Encode())
	f.Add([]byte(`{"v":1,"csr":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRenewRequest(b)
		if err != nil {
			return
		}
		if again, err := DecodeRenewRequest(r.Encode()); err != nil || again != r {
			t.Fatalf("accepted %q, but its encoding decodes to %+v, %v", b, again, err)
		}
	})
}
