package protocol

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// plainCheckin is a Checkin as kioskd encodes one.
const plainCheckin = `{"v":1,"id":"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11","deviceId":"kiosk-bib-geel-01","seq":4711,"chipNumber":"042F51B2712380","eventId":"evt-7781","counterId":"balie-geel","tappedAt":"2026-11-24T09:12:33.481Z","clockSynced":true,"bootId":"b","uptimeMs":5}`

// fastAgreesWithJSON fails t where fast answers b otherwise than
// json.Unmarshal into a T, and reports whether fast answered.
func fastAgreesWithJSON[T any](t *testing.T, fast func([]byte) (T, bool), b []byte) bool {
	t.Helper()
	got, ok := fast(b)
	if !ok {
		return false
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("fast path took %q, encoding/json refuses it: %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast path of %q:\n got %#v\nwant %#v", b, got, want)
	}
	return true
}

// sameAnswer fails t where decode answers b otherwise than decodeJSON (the
// same decoder with encoding/json alone), error text included.
func sameAnswer[T any](t *testing.T, decode, decodeJSON func([]byte) (T, error), b []byte) {
	t.Helper()
	got, gerr := decode(b)
	want, werr := decodeJSON(b)
	if !reflect.DeepEqual(got, want) || (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Errorf("%q:\n got %#v, %v\nwant %#v, %v", b, got, gerr, want, werr)
	}
}

// jsonOnly is decode with encoding/json alone, then validate: a Decode
// function without its fast path.
func jsonOnly[T any, P interface {
	*T
	versioned
}](validate func(T) (T, error)) func([]byte) (T, error) {
	return func(b []byte) (T, error) {
		var v T
		if err := decode(b, P(&v)); err != nil {
			var zero T
			return zero, err
		}
		return validate(v)
	}
}

var (
	decodeCheckinJSON = jsonOnly[Checkin](validateCheckin)
	decodeResultJSON  = jsonOnly[Result](validateResult)
)

// benchDecode measures decode and decodeJSON on in.
func benchDecode[T any](b *testing.B, in []byte, decode, decodeJSON func([]byte) (T, error)) {
	for _, bc := range []struct {
		name   string
		decode func([]byte) (T, error)
	}{{"fast", decode}, {"json", decodeJSON}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeCheckinFast(t *testing.T) {
	c := Checkin{ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", DeviceID: "k-1", Seq: 9, ChipNumber: "04A1B2C3",
		EventID: "e", TappedAt: "2026-11-24T09:12:33Z", BootID: "b"}
	for _, b := range []string{
		plainCheckin,
		string(c.Encode()),
		`{}`,
		` { "v" : 1 , "seq" : -0 , "uptimeMs" : -9223372036854775808 , "clockSynced" : false } ` + "\n\t\r",
		`{"id":"","counterId":"a b~!#$%&'()*+,-./:;<=>?@[]^_{|}` + "\x7f" + `"}`,
		`{"id":"é ’   🙂","eventId":"Bib Geel – leesclub"}`,
	} {
		if !fastAgreesWithJSON(t, decodeCheckinFast, []byte(b)) {
			t.Errorf("plain shape left to encoding/json: %s", b)
		}
	}
	// Each of these leaves the plain shape: encoding/json answers them,
	// whether with a Checkin or an error.
	for _, b := range []string{
		`{"ID":"x"}`, // json matches keys without regard to case
		`{"v":1,"v":2}`,
		`{"id":null}`,
		`{"id":"a\"b"}`,
		`{"id":"\u0061"}`,
		"{\"id\":\"\xff\"}", "{\"id\":\"\xed\xa0\x80\"}", "{\"id\":\"\xe2\x80\"}", // not UTF-8
		"{\"id\":\"a\x01\"}",
		`{"seq":1.0}`, `{"seq":1e3}`, `{"seq":01}`, `{"seq":-}`, `{"seq":+1}`, `{"seq":9223372036854775808}`,
		`{"seq":"1"}`, `{"clockSynced":1}`, `{"clockSynced":tru}`, `{"clockSynced":truex}`,
		`{"x":1}`, `{"id":{}}`, `{"id":[]}`,
		`{"v":1,}`, `{,"v":1}`, `{"v":1}x`, `{"v":1}{}`, `{"v" 1}`, `{"v":1`, `{"v`, `{`, ``, `[]`, `null`,
	} {
		if fastAgreesWithJSON(t, decodeCheckinFast, []byte(b)) {
			t.Errorf("fast path took %s", b)
		}
	}
}

// TestDecodeCheckinAnswersAsBefore: DecodeCheckin gives, fast path or not,
// what decoding with encoding/json alone gives, error included.
func TestDecodeCheckinAnswersAsBefore(t *testing.T) {
	for _, b := range []string{
		plainCheckin,
		strings.Replace(plainCheckin, `"v":1`, `"v":2`, 1),
		strings.Replace(plainCheckin, `"v":1,`, ``, 1),
		strings.Replace(plainCheckin, `"seq":4711`, `"seq":0`, 1),
		strings.Replace(plainCheckin, `"deviceId":"kiosk-bib-geel-01"`, `"deviceId":"Kiosk"`, 1),
		strings.Replace(plainCheckin, `"tappedAt":"2026-11-24T09:12:33.481Z"`, `"tappedAt":"gisteren"`, 1),
		strings.Replace(plainCheckin, `"eventId"`, `"EventId"`, 1),
		`{"v":1,"id":"x"}`,
		`garbage`,
	} {
		sameAnswer(t, DecodeCheckin, decodeCheckinJSON, []byte(b))
	}
}

func FuzzDecodeCheckinFast(f *testing.F) {
	f.Add([]byte(plainCheckin))
	f.Add([]byte(`{"v":1,"seq":-0,"clockSynced":false,"id":"x"}`))
	f.Add([]byte(`{"ID":"x","seq":1.0,"id":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fastAgreesWithJSON(t, decodeCheckinFast, b)
		sameAnswer(t, DecodeCheckin, decodeCheckinJSON, b)
	})
}

// The hand-written checks against the patterns of the contract.
var (
	uuidPattern     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	deviceIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{2,63}$`)
)

func checkIDs(t *testing.T, s string) {
	t.Helper()
	if got, want := ValidID(s), uuidPattern.MatchString(s); got != want {
		t.Errorf("ValidID(%q) = %v, the pattern says %v", s, got, want)
	}
	if got, want := ValidDeviceID(s), deviceIDPattern.MatchString(s); got != want {
		t.Errorf("ValidDeviceID(%q) = %v, the pattern says %v", s, got, want)
	}
}

func TestValidIDsMatchPatterns(t *testing.T) {
	for _, s := range []string{
		"", "abc", "ab", "-ab", "a-b", "a--", "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", "0193A1F4-7C1E-7D2A-9B1F-2F0C6A8E4D11",
		"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d1", "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d111", "0193a1f4x7c1e-7d2a-9b1f-2f0c6a8e4d11",
		"0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d1g", "kiosk-bib-geel-01", "Kiosk", "kiosk_1", "kiosk\n", "kiosk-é",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63),
	} {
		checkIDs(t, s)
	}
}

func FuzzValidIDs(f *testing.F) {
	f.Add("0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11")
	f.Add("kiosk-bib-geel-01")
	f.Fuzz(func(t *testing.T, s string) { checkIDs(t, s) })
}

// BenchmarkDecodeCheckin: a kiosk's checkin decoded and checked, by the
// fast path and by encoding/json alone.
func BenchmarkDecodeCheckin(b *testing.B) {
	benchDecode(b, []byte(plainCheckin), DecodeCheckin, decodeCheckinJSON)
}

// resultJSONPayload is a Result as central encodes one.
var resultJSONPayload = string(Result{ID: "0193a1f4-7c1e-7d2a-9b1f-2f0c6a8e4d11", Status: StatusSaved, NewPoints: 1, TotalPoints: 23,
	EndUserMessage: map[string]string{"nl": "Totaal: 23\u00a0punten", "fr": "Total\u00a0: 23\u00a0points", "en": "Total: 23\u00a0points"}}.Encode())

func TestDecodeResultFast(t *testing.T) {
	for _, b := range []string{
		resultJSONPayload,
		`{"v":1,"id":"x","status":"saved","newPoints":-1,"totalPoints":0}`,
		`{"endUserMessage":{}}`,
		` { "endUserMessage" : { "a" : "x" , "a" : "y" , "" : "" } } `,
	} {
		if !fastAgreesWithJSON(t, decodeResultFast, []byte(b)) {
			t.Errorf("plain shape left to encoding/json: %s", b)
		}
		sameAnswer(t, DecodeResult, decodeResultJSON, []byte(b))
	}
	for _, b := range []string{
		`{"endUserMessage":null}`, `{"endUserMessage":{"a":1}}`, `{"endUserMessage":{"a":"x",}}`, `{"endUserMessage":{"a"}}`,
		`{"endUserMessage":[]}`, `{"endUserMessage":{"a":"x"},"endUserMessage":{}}`, `{"Status":"saved"}`,
		`{"newPoints":1.5}`, `{"id":"a\u0062"}`, "{\"id\":\"\xff\"}", `{"v":1}x`, ``,
	} {
		if fastAgreesWithJSON(t, decodeResultFast, []byte(b)) {
			t.Errorf("fast path took %s", b)
		}
		sameAnswer(t, DecodeResult, decodeResultJSON, []byte(b))
	}
}

func FuzzDecodeResultFast(f *testing.F) {
	f.Add([]byte(resultJSONPayload))
	f.Add([]byte(`{"v":1,"id":"x","status":"saved","endUserMessage":{"a":"x","a":"y"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fastAgreesWithJSON(t, decodeResultFast, b)
		sameAnswer(t, DecodeResult, decodeResultJSON, b)
	})
}

// BenchmarkDecodeResult: central's Result decoded and checked, by the fast
// path and by encoding/json alone (a kiosk decodes one per tap).
func BenchmarkDecodeResult(b *testing.B) {
	benchDecode(b, []byte(resultJSONPayload), DecodeResult, decodeResultJSON)
}
