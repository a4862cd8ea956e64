package frame

import (
	"bytes"
	"errors"
	"testing"
)

// frameCase is one row of the table that both the encode and the decode
// tests read: wire bytes and what they mean.
type frameCase struct {
	name string
	wire []byte
	// want is the decoded frame (zero when err is set).
	want Frame
	n    int   // bytes Decode reports
	err  error // Decode's error
	// encode, when set, must reproduce wire exactly.
	encode func() ([]byte, error)
}

func info(tfi byte, data ...byte) func() ([]byte, error) {
	return func() ([]byte, error) { return AppendInfo(nil, tfi, data) }
}

func ok(b []byte) func() ([]byte, error) { return func() ([]byte, error) { return b, nil } }

// longData is 300 bytes: more than a normal frame carries.
func longData() []byte {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// extendedWire builds the extended frame for D5+longData by hand, from the
// manual's layout, so the encoder is checked against something it did not write.
func extendedWire() []byte {
	data := longData()
	n := len(data) + 1 // 301 = 0x012D
	w := []byte{0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x2D, byte(0x100 - (0x01+0x2D)%0x100)}
	sum := int(PN532ToHost)
	w = append(w, PN532ToHost)
	for _, c := range data {
		sum += int(c)
		w = append(w, c)
	}
	_ = n
	return append(w, byte(0x100-sum%0x100), 0x00)
}

func frameCases() []frameCase {
	ext := extendedWire()
	return []frameCase{
		{name: "ack", wire: []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}, want: Frame{Kind: ACK}, n: 6,
			encode: ok(AppendACK(nil))},
		{name: "nack", wire: []byte{0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00}, want: Frame{Kind: NACK}, n: 6,
			encode: ok(AppendNACK(nil))},
		{name: "error frame", wire: []byte{0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00},
			want: Frame{Kind: Error, TFI: 0x7F}, n: 8, encode: ok(AppendError(nil))},
		{name: "GetFirmwareVersion", wire: []byte{0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00},
			want: Frame{Kind: Info, TFI: 0xD4, Data: []byte{0x02}}, n: 9, encode: info(0xD4, 0x02)},
		{name: "SAMConfiguration", wire: []byte{0x00, 0x00, 0xFF, 0x05, 0xFB, 0xD4, 0x14, 0x01, 0x14, 0x01, 0x02, 0x00},
			want: Frame{Kind: Info, TFI: 0xD4, Data: []byte{0x14, 0x01, 0x14, 0x01}}, n: 12,
			encode: info(0xD4, 0x14, 0x01, 0x14, 0x01)},
		{name: "InListPassiveTarget", wire: []byte{0x00, 0x00, 0xFF, 0x04, 0xFC, 0xD4, 0x4A, 0x01, 0x00, 0xE1, 0x00},
			want: Frame{Kind: Info, TFI: 0xD4, Data: []byte{0x4A, 0x01, 0x00}}, n: 11,
			encode: info(0xD4, 0x4A, 0x01, 0x00)},
		{name: "firmware reply", wire: []byte{0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5, 0x03, 0x32, 0x01, 0x06, 0x07, 0xE8, 0x00},
			want: Frame{Kind: Info, TFI: 0xD5, Data: []byte{0x03, 0x32, 0x01, 0x06, 0x07}}, n: 13,
			encode: info(0xD5, 0x03, 0x32, 0x01, 0x06, 0x07)},
		{name: "DESFire reply", wire: []byte{0x00, 0x00, 0xFF, 0x15, 0xEB, 0xD5, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07,
			0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80, 0x31, 0x00},
			want: Frame{Kind: Info, TFI: 0xD5, Data: []byte{0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07,
				0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80}}, n: 28,
			encode: info(0xD5, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07,
				0x04, 0x2F, 0x51, 0xB2, 0x71, 0x23, 0x80, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80)},
		{name: "extended 300 bytes", wire: ext,
			want: Frame{Kind: Info, Extended: true, TFI: 0xD5, Data: longData()}, n: len(ext),
			encode: func() ([]byte, error) { return AppendInfo(nil, 0xD5, longData()) }},
		{name: "extended short", wire: []byte{0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x03, 0xFD, 0xD5, 0x4B, 0x00, 0xE0, 0x00},
			want: Frame{Kind: Info, Extended: true, TFI: 0xD5, Data: []byte{0x4B, 0x00}}, n: 13},
		{name: "long preamble", wire: []byte{0x00, 0x00, 0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}, want: Frame{Kind: ACK}, n: 8},
		{name: "no preamble", wire: []byte{0x00, 0xFF, 0x00, 0xFF, 0x00}, want: Frame{Kind: ACK}, n: 5},
		{name: "noise before", wire: []byte{0x12, 0x34, 0x00, 0xFF, 0x00, 0xFF, 0x00}, want: Frame{Kind: ACK}, n: 7},
		{name: "false start then ack", wire: []byte{0x00, 0xFF, 0x05, 0x00, 0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00},
			want: Frame{Kind: ACK}, n: 10},
		{name: "padding after", wire: []byte{0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD5, 0x15, 0x16, 0x00, 0x00, 0x00, 0x00},
			want: Frame{Kind: Info, TFI: 0xD5, Data: []byte{0x15}}, n: 9},
		{name: "postamble cut", wire: []byte{0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A},
			want: Frame{Kind: Info, TFI: 0xD4, Data: []byte{0x02}}, n: 8},
		{name: "bad LCS", wire: []byte{0x00, 0x00, 0xFF, 0x02, 0xFD, 0xD4, 0x02, 0x2A, 0x00}, err: ErrLCS},
		{name: "bad DCS", wire: []byte{0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2B, 0x00}, err: ErrDCS, n: 9},
		{name: "bad extended LCS", wire: []byte{0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x03, 0xFE, 0xD5, 0x4B, 0x00, 0xE0, 0x00}, err: ErrLCS},
		{name: "truncated", wire: []byte{0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5, 0x03, 0x32}, err: ErrTruncated, n: 13},
		{name: "truncated header", wire: []byte{0x00, 0x00, 0xFF, 0x06}, err: ErrTruncated},
		{name: "bad TFI", wire: []byte{0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD6, 0x02, 0x28, 0x00}, err: ErrFormat, n: 9},
		{name: "zeros", wire: []byte{0x00, 0x00, 0x00, 0x00}, err: ErrNoStart},
		{name: "zero length", wire: []byte{0x00, 0xFF, 0x00, 0x00, 0x00}, err: ErrFormat},
		{name: "powered down (MISO high)", wire: []byte{0xFF, 0xFF, 0xFF, 0xFF}, err: ErrNoStart},
		{name: "empty", wire: nil, err: ErrNoStart},
	}
}

func TestEncode(t *testing.T) {
	for _, c := range frameCases() {
		if c.encode == nil {
			continue
		}
		got, err := c.encode()
		if err != nil {
			t.Errorf("%s: encode: %v", c.name, err)
			continue
		}
		if !bytes.Equal(got, c.wire) {
			t.Errorf("%s: encode\n got % X\nwant % X", c.name, got, c.wire)
		}
	}
}

func TestDecode(t *testing.T) {
	for _, c := range frameCases() {
		f, n, err := Decode(c.wire)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			continue
		}
		if n != c.n {
			t.Errorf("%s: n = %d, want %d", c.name, n, c.n)
		}
		if f.Kind != c.want.Kind || f.Extended != c.want.Extended || f.TFI != c.want.TFI || !bytes.Equal(f.Data, c.want.Data) {
			t.Errorf("%s: got %+v, want %+v", c.name, f, c.want)
		}
	}
}

func TestAppendInfoTooLong(t *testing.T) {
	if _, err := AppendInfo(nil, HostToPN532, make([]byte, MaxExtendedData)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

func TestDecodeAllocs(t *testing.T) {
	wire := frameCases()[7].wire
	if a := testing.AllocsPerRun(100, func() { _, _, _ = Decode(wire) }); a != 0 {
		t.Fatalf("Decode allocates %.0f times", a)
	}
}
