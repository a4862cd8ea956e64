package frame

import (
	"bytes"
	"errors"
	"testing"
)

func TestCommandBytes(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"GetFirmwareVersion", AppendGetFirmwareVersion(nil), []byte{0x02}},
		{"SAMConfiguration", AppendSAMConfiguration(nil, 0x14, true), []byte{0x14, 0x01, 0x14, 0x01}},
		{"RF off", AppendRFField(nil, false), []byte{0x32, 0x01, 0x00}},
		{"RF on", AppendRFField(nil, true), []byte{0x32, 0x01, 0x01}},
		{"MaxRetries", AppendMaxRetries(nil, 0x02, 0x01, 0x03), []byte{0x32, 0x05, 0x02, 0x01, 0x03}},
		{"InListPassiveTarget", AppendInListPassiveTarget(nil, 1), []byte{0x4A, 0x01, 0x00}},
		{"InRelease", AppendInRelease(nil, 0), []byte{0x52, 0x00}},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % X, want % X", c.name, c.got, c.want)
		}
	}
}

func TestParseFirmware(t *testing.T) {
	f, err := ParseFirmware([]byte{0x03, 0x32, 0x01, 0x06, 0x07})
	if err != nil || f != (Firmware{IC: 0x32, Ver: 1, Rev: 6, Support: 7}) {
		t.Fatalf("got %+v, %v", f, err)
	}
	if s := f.String(); s != "PN532 v1.6 support=0x7" {
		t.Errorf("String() = %q", s)
	}
	for _, bad := range [][]byte{nil, {0x03}, {0x03, 0x32, 0x01, 0x06}, {0x4B, 0x32, 0x01, 0x06, 0x07}, {0x03, 0x32, 0x01, 0x06, 0x07, 0x00}} {
		if _, err := ParseFirmware(bad); err == nil {
			t.Errorf("ParseFirmware(% X) accepted", bad)
		}
	}
}

// inListCases is shared by the parser test and the fuzz seeds.
func inListCases() []struct {
	name string
	in   []byte
	n    int
	uids [][]byte
	err  error
} {
	uid7 := []byte{0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80}
	uid4 := []byte{0xDE, 0xAD, 0xBE, 0xEF}
	uid10 := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	ats := []byte{0x06, 0x75, 0x77, 0x81, 0x02, 0x80}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	return []struct {
		name string
		in   []byte
		n    int
		uids [][]byte
		err  error
	}{
		{"no card", []byte{0x4B, 0x00}, 0, nil, nil},
		{"DESFire 7-byte with ATS", cat([]byte{0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07}, uid7, ats), 1, [][]byte{uid7}, nil},
		{"DESFire without ATS", cat([]byte{0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07}, uid7), 1, [][]byte{uid7}, nil},
		{"Classic 4-byte", cat([]byte{0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04}, uid4), 1, [][]byte{uid4}, nil},
		{"10-byte", cat([]byte{0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x0A}, uid10), 1, [][]byte{uid10}, nil},
		{"two cards", cat([]byte{0x4B, 0x02, 0x01, 0x03, 0x44, 0x20, 0x07}, uid7, ats, []byte{0x02, 0x00, 0x04, 0x08, 0x04}, uid4),
			2, [][]byte{uid7, uid4}, nil},
		{"wrong code", []byte{0x03, 0x00}, 0, nil, ErrReplyCode},
		{"empty", nil, 0, nil, ErrReplyCode},
		{"no NbTg", []byte{0x4B}, 0, nil, ErrReply},
		{"NbTg 3", []byte{0x4B, 0x03}, 0, nil, ErrReply},
		{"UID length 5", []byte{0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x05, 1, 2, 3, 4, 5}, 0, nil, ErrReply},
		{"UID cut", cat([]byte{0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07}, uid7[:5]), 0, nil, ErrReply},
		{"ATS TL too long", cat([]byte{0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07}, uid7, []byte{0x09, 0x75}), 0, nil, ErrReply},
		{"ATS TL zero", cat([]byte{0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07}, uid7, []byte{0x00}), 0, nil, ErrReply},
		{"trailing bytes", cat([]byte{0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04}, uid4, []byte{0x99}), 0, nil, ErrReply},
		{"second target cut", cat([]byte{0x4B, 0x02, 0x01, 0x00, 0x04, 0x08, 0x04}, uid4, []byte{0x02, 0x00}), 0, nil, ErrReply},
	}
}

func TestParseInList(t *testing.T) {
	for _, c := range inListCases() {
		r, err := ParseInList(c.in)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			continue
		}
		if err != nil {
			continue
		}
		if r.N != c.n {
			t.Errorf("%s: N = %d, want %d", c.name, r.N, c.n)
			continue
		}
		for i := 0; i < r.N; i++ {
			if !bytes.Equal(r.T[i].UID, c.uids[i]) {
				t.Errorf("%s: target %d UID % X, want % X", c.name, i, r.T[i].UID, c.uids[i])
			}
		}
	}
}

func TestRandomID(t *testing.T) {
	if !(Target{UID: []byte{0x08, 1, 2, 3}}).RandomID() {
		t.Error("08xxxxxx not random")
	}
	if (Target{UID: []byte{0x08, 1, 2, 3, 4, 5, 6}}).RandomID() {
		t.Error("7-byte UID starting 08 called random")
	}
}
