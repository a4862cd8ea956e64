package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckChip(t *testing.T) {
	for _, tc := range []struct {
		chip string
		want error
	}{
		{"042F51B2712380", nil},
		{"04A1B2C3", nil},
		{"04A1B2C3D4E5F60718293A", ErrBadChip},
		{"04A1B2C3D4E5F6071829", nil},
		{"08A1B2C3", ErrRandomUID},
		{"042f51b2712380", ErrBadChip},
		{"04A1B2", ErrBadChip},
		{"", ErrBadChip},
		{"0G2F51B2712380", ErrBadChip},
	} {
		err := CheckChip(tc.chip)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckChip(%q) = %v, want %v", tc.chip, err, tc.want)
		}
	}
}

func TestMaskChip(t *testing.T) {
	if got := MaskChip("042F51B2712380"); got != "04…80" {
		t.Fatalf("MaskChip = %q", got)
	}
	if got := MaskChip("0A"); strings.Contains(got, "0A") {
		t.Fatalf("short chip leaked: %q", got)
	}
}

func TestParseTopic(t *testing.T) {
	d, k, err := ParseTopic("kiosk/v1", "kiosk/v1/kiosk-bib-geel-01/checkin")
	if err != nil || d != "kiosk-bib-geel-01" || k != KindCheckin {
		t.Fatalf("got %q %q %v", d, k, err)
	}
	for _, bad := range []string{"kiosk/v1/x/checkin", "kiosk/v2/abc/checkin", "kiosk/v1/abc/other", "kiosk/v1/abc/checkin/x", "kiosk/v1/ABC/checkin"} {
		if _, _, err := ParseTopic("kiosk/v1", bad); err == nil {
			t.Errorf("ParseTopic(%q) accepted", bad)
		}
	}
}

func TestDecodeResultRejects(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`not json`, ErrMalformed},
		{`[1,2]`, ErrMalformed},
		{`{"id":"x","status":"saved"}`, ErrMissing},
		{`{"v":2,"id":"x","status":"saved"}`, ErrVersion},
		// The version is judged before the rest of the payload.
		{`{"v":2,"id":"x","status":"saved","newPoints":"one"}`, ErrVersion},
		{`{"id":"x","status":"saved","newPoints":"one"}`, ErrMissing},
		{`{"v":null,"id":"x","status":"saved"}`, ErrMissing},
		{`{"v":"1","id":"x","status":"saved"}`, ErrMalformed},
		{`{"v":1,"status":"saved"}`, ErrMissing},
		{`{"v":1,"id":"x","status":"booked"}`, ErrInvalid},
		{`{"v":1,"id":"x","status":"saved","newPoints":"one"}`, ErrMalformed},
		{`{"v":1,"id":"x","status":"saved","pad":"` + strings.Repeat("a", MaxPayload) + `"}`, ErrTooLarge},
	} {
		if _, err := DecodeResult([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("DecodeResult(%.40q) = %v, want %v", tc.in, err, tc.want)
		}
	}
	r, err := DecodeResult([]byte(`{"v":1,"id":"x","status":"saved","newPoints":1,"totalPoints":23,"extra":true,"endUserMessage":{"nl":"Totaal: 23."}}`))
	if err != nil || r.TotalPoints != 23 || r.EndUserMessage["nl"] != "Totaal: 23." {
		t.Fatalf("valid result: %+v %v", r, err)
	}
}

func TestCheckinRoundTrip(t *testing.T) {
	c := Checkin{ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", DeviceID: "kiosk-bib-geel-01", Seq: 4711,
		ChipNumber: "042F51B2712380", EventID: "evt-7781", CounterID: "balie-geel",
		TappedAt: FormatTime(time.Date(2026, 11, 24, 9, 12, 33, 481e6, time.UTC)), ClockSynced: true, BootID: "b", UptimeMs: 5}
	b := c.Encode()
	want := `{"v":1,"id":"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11","deviceId":"kiosk-bib-geel-01","seq":4711,"chipNumber":"042F51B2712380","eventId":"evt-7781","counterId":"balie-geel","tappedAt":"2026-11-24T09:12:33.481Z","clockSynced":true,"bootId":"b","uptimeMs":5}`
	if string(b) != want {
		t.Fatalf("encode:\n got %s\nwant %s", b, want)
	}
	got, err := DecodeCheckin(b)
	if err != nil {
		t.Fatal(err)
	}
	c.V = 1
	if got != c {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestConfigSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	c := Config{Serial: 12, EventID: "evt-7781", EventTitle: "Bib Geel – leesclub <&>", Points: 1,
		Constraint: Constraint{Period: PeriodDay, Volume: 1}, BlockedChips: []string{"04AABBCCDDEEFF"}}
	signed, err := SignConfig(c, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyConfig(signed, pub)
	if err != nil || got.Serial != 12 || got.EventTitle != c.EventTitle {
		t.Fatalf("verify: %+v %v", got, err)
	}
	tampered := []byte(strings.Replace(string(signed), `"serial":12`, `"serial":13`, 1))
	if _, err := VerifyConfig(tampered, pub); !errors.Is(err, ErrBadSig) {
		t.Fatalf("tampered config: %v", err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyConfig(signed, otherPub); !errors.Is(err, ErrBadSig) {
		t.Fatalf("other key: %v", err)
	}
	// Canonical form is independent of key order and spacing.
	a, _ := Canonical([]byte(`{"b":1, "a":{"d":2,"c":1.50},"sig":"x"}`))
	if string(a) != `{"a":{"c":1.50,"d":2},"b":1}` {
		t.Fatalf("canonical: %s", a)
	}
}

func TestPeriodBucket(t *testing.T) {
	bru, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Skip("no tzdata")
	}
	// 23:30 UTC on 31 Dec 2026 is already 1 Jan 2027 in Brussels.
	t0 := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)
	for _, tc := range []struct{ period, want string }{
		{PeriodAbsolute, "A"}, {PeriodDay, "D2027-01-01"}, {PeriodWeek, "W2026-53"},
		{PeriodMonth, "M2027-01"}, {PeriodQuarter, "Q2027-1"}, {PeriodYear, "Y2027"},
	} {
		got, err := PeriodBucket(tc.period, t0, bru)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.period, got, err, tc.want)
		}
	}
	if _, err := PeriodBucket("HOUR", t0, bru); err == nil {
		t.Error("HOUR accepted")
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"x","status":"saved","newPoints":1}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) { DecodeResult(b) })
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"v":1,"serial":1,"eventId":"e","constraint":{"period":"DAY","volume":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeConfig(b)
		Canonical(b)
	})
}

// resultJSON is the Result as encoding/json writes it without HTML
// escaping: what Result.Encode must give byte for byte.
func resultJSON(t *testing.T, r Result) string {
	t.Helper()
	r.V = Version
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestResultEncodeMatchesJSON(t *testing.T) {
	for _, r := range []Result{
		{},
		{ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", Status: StatusSaved, NewPoints: 1, TotalPoints: 23,
			EndUserMessage: map[string]string{"nl": "Totaal: 23\u00a0punten", "fr": "Total\u00a0: 23\u00a0points", "en": "Total: 23\u00a0points"}},
		{ID: "x", Status: StatusMaximumReached, NewPoints: -3, TotalPoints: -9223372036854775808, EndUserMessage: map[string]string{}},
		{ID: "q\"b\\s/<>&\x00\x01\x1f\x7f\b\f\n\r\t", Status: "\u2028\u2029\ufffd é ’",
			EndUserMessage: map[string]string{"b": "bad \xff\xfe utf-8 \xe2\x80", "a": "", "\x00k": "v"}},
	} {
		if got, want := string(r.Encode()), resultJSON(t, r); got != want {
			t.Errorf("Encode:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzResultEncode(f *testing.F) {
	f.Add("0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", "saved", 1, 23, "nl", "Totaal: 23\u00a0punten")
	f.Add("\x00\"\\", "\xff\u2028", -1, 0, "", "\x7f<&>")
	f.Fuzz(func(t *testing.T, id, status string, np, tp int, k, v string) {
		r := Result{ID: id, Status: status, NewPoints: np, TotalPoints: tp, EndUserMessage: map[string]string{k: v, "z" + k: v + k}}
		if got, want := string(r.Encode()), resultJSON(t, r); got != want {
			t.Fatalf("Encode:\n got %q\nwant %q", got, want)
		}
		if _, err := DecodeResult(r.Encode()); err != nil && id != "" && KnownStatus(status) {
			t.Fatalf("decode of encoded: %v", err)
		}
	})
}
