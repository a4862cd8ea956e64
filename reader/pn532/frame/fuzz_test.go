package frame

import (
	"bytes"
	"testing"
)

func FuzzDecode(f *testing.F) {
	for _, c := range frameCases() {
		f.Add(c.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := Decode(b)
		if err != nil {
			return
		}
		if n < 1 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		if fr.Kind != Info {
			return
		}
		// What decodes must re-encode to a frame that decodes the same.
		w, err := AppendInfo(nil, fr.TFI, fr.Data)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		g, m, err := Decode(w)
		if err != nil || m != len(w) || g.TFI != fr.TFI || !bytes.Equal(g.Data, fr.Data) {
			t.Fatalf("round trip: %+v %d %v, want %+v", g, m, err, fr)
		}
	})
}

func FuzzParseInList(f *testing.F) {
	for _, c := range inListCases() {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseInList(b)
		if err != nil {
			return
		}
		if r.N < 0 || r.N > 2 {
			t.Fatalf("N = %d", r.N)
		}
		for i := 0; i < r.N; i++ {
			switch len(r.T[i].UID) {
			case 4, 7, 10:
			default:
				t.Fatalf("UID length %d", len(r.T[i].UID))
			}
			if a := r.T[i].ATS; len(a) > 0 && int(a[0]) != len(a) {
				t.Fatalf("ATS TL %d, length %d", a[0], len(a))
			}
		}
	})
}

func FuzzParseFirmware(f *testing.F) {
	f.Add([]byte{0x03, 0x32, 0x01, 0x06, 0x07})
	f.Add([]byte{0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		fw, err := ParseFirmware(b)
		if err == nil && len(b) != 5 {
			t.Fatalf("accepted %d bytes: %+v", len(b), fw)
		}
		_ = fw.String()
	})
}
