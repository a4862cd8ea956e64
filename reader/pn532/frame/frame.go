// Package frame is the PN532 host-link codec: information frames (normal and
// extended), ACK, NACK and the application error frame, with their length and
// data checksums, plus the few commands and reply parsers the kiosk needs.
//
// It knows nothing of SPI or timing, allocates nothing on its hot paths (it
// appends to and slices into the caller's buffers), and never panics on
// untrusted input: every decoder here is fuzzed.
//
// Reference: NXP PN532 User Manual UM0701-02, §6.2 (frames) and §7 (commands).
package frame

import "errors"

// Frame identifiers (TFI).
const (
	HostToPN532 byte = 0xD4
	PN532ToHost byte = 0xD5
	// ErrorTFI is the TFI of the application-level error frame
	// (00 00 FF 01 FF 7F 81 00): the chip found a syntax error in a command.
	ErrorTFI byte = 0x7F
)

// MaxNormalData is the most TFI+PD bytes a normal frame carries (LEN is one byte).
const MaxNormalData = 255

// MaxExtendedData is the most TFI+PD bytes an extended frame carries.
const MaxExtendedData = 0xFFFF

// Overhead is what a normal frame adds around TFI+PD: preamble, start code,
// LEN, LCS, DCS, postamble.
const Overhead = 6

// ExtendedOverhead is the same for an extended frame (FF FF LENM LENL LCS).
const ExtendedOverhead = 9

// Kind tells frames apart.
type Kind uint8

// Frame kinds.
const (
	Info  Kind = iota + 1 // normal or extended information frame
	ACK                   // 00 00 FF 00 FF 00
	NACK                  // 00 00 FF FF 00 00
	Error                 // application error frame
)

func (k Kind) String() string {
	switch k {
	case Info:
		return "info"
	case ACK:
		return "ack"
	case NACK:
		return "nack"
	case Error:
		return "error"
	}
	return "invalid"
}

// Frame is a decoded frame. Data aliases the decoded buffer.
type Frame struct {
	Kind     Kind
	Extended bool
	// TFI is D4 or D5 for an information frame, 7F for the error frame.
	TFI byte
	// Data is PD0…PDn: the command or response code and its parameters.
	Data []byte
}

// Errors a decoder returns; callers branch on them with errors.Is.
var (
	// ErrNoStart: no start code (00 FF) in the bytes.
	ErrNoStart = errors.New("frame: no start code")
	// ErrTruncated: a frame starts but the bytes end before it does.
	ErrTruncated = errors.New("frame: truncated")
	// ErrLCS: the length checksum does not match.
	ErrLCS = errors.New("frame: length checksum mismatch")
	// ErrDCS: the data checksum does not match.
	ErrDCS = errors.New("frame: data checksum mismatch")
	// ErrFormat: checksums hold but the frame makes no sense (bad TFI, LEN 0 on an extended frame).
	ErrFormat = errors.New("frame: malformed")
	// ErrTooLong: data does not fit even an extended frame.
	ErrTooLong = errors.New("frame: data too long")
)

// AppendACK appends the ACK frame.
func AppendACK(dst []byte) []byte { return append(dst, 0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00) }

// AppendNACK appends the NACK frame (the host asks for the last reply again).
func AppendNACK(dst []byte) []byte { return append(dst, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00) }

// AppendError appends the application error frame.
func AppendError(dst []byte) []byte {
	return append(dst, 0x00, 0x00, 0xFF, 0x01, 0xFF, ErrorTFI, 0x81, 0x00)
}

// AppendInfo appends an information frame with tfi and data (PD0…PDn). It
// writes a normal frame when TFI+data fit in 255 bytes, an extended one
// otherwise.
func AppendInfo(dst []byte, tfi byte, data []byte) ([]byte, error) {
	n := len(data) + 1
	if n > MaxExtendedData {
		return dst, ErrTooLong
	}
	if n <= MaxNormalData {
		dst = append(dst, 0x00, 0x00, 0xFF, byte(n), -byte(n))
	} else {
		m, l := byte(n>>8), byte(n)
		dst = append(dst, 0x00, 0x00, 0xFF, 0xFF, 0xFF, m, l, -(m + l))
	}
	sum := tfi
	dst = append(dst, tfi)
	for _, b := range data {
		sum += b
	}
	dst = append(dst, data...)
	return append(dst, -sum, 0x00), nil
}

// Decode finds and decodes the first frame in b. It scans for the start
// code, so any preamble length and leading noise are accepted; a start code
// that turns out false (its length checksum fails) is skipped and the scan
// goes on.
//
// n is how many bytes of b the frame used, counting from b[0] (postamble
// included when present). When err is ErrTruncated, n is instead how many
// bytes from b[0] the whole frame needs, or 0 when not yet known.
func Decode(b []byte) (f Frame, n int, err error) {
	var first error
	firstN := 0
	for i := 0; i+1 < len(b); i++ {
		if b[i] != 0x00 || b[i+1] != 0xFF {
			continue
		}
		f, n, err, lenOK := decodeAt(b, i+2)
		if err == nil {
			return f, n, nil
		}
		if lenOK {
			// The length checksum held, so this was a real frame start:
			// report its own failure rather than hunting further.
			return Frame{}, n, err
		}
		if first == nil {
			first, firstN = err, n
		}
	}
	if first == nil {
		return Frame{}, 0, ErrNoStart
	}
	return Frame{}, firstN, first
}

// decodeAt decodes a frame whose start code ends just before b[p]. lenOK
// reports whether the length field checked out (the start was genuine).
func decodeAt(b []byte, p int) (f Frame, n int, err error, lenOK bool) {
	if p+2 > len(b) {
		return Frame{}, 0, ErrTruncated, false
	}
	l, lcs := b[p], b[p+1]
	switch {
	case l == 0x00 && lcs == 0xFF:
		return Frame{Kind: ACK}, minInt(p+3, len(b)), nil, true
	case l == 0xFF && lcs == 0x00:
		return Frame{Kind: NACK}, minInt(p+3, len(b)), nil, true
	case l == 0xFF && lcs == 0xFF:
		return decodeExtended(b, p+2)
	}
	if byte(l+lcs) != 0 {
		return Frame{}, 0, ErrLCS, false
	}
	if l == 0 {
		// 00 FF 00 00: a run of zeros, not a frame (LEN counts at least the TFI).
		return Frame{}, 0, ErrFormat, false
	}
	return decodeBody(b, p+2, int(l), false)
}

func decodeExtended(b []byte, p int) (f Frame, n int, err error, lenOK bool) {
	if p+3 > len(b) {
		return Frame{}, 0, ErrTruncated, false
	}
	m, l, lcs := b[p], b[p+1], b[p+2]
	if byte(m+l+lcs) != 0 {
		return Frame{}, 0, ErrLCS, false
	}
	length := int(m)<<8 | int(l)
	if length == 0 {
		return Frame{}, 0, ErrFormat, true
	}
	return decodeBody(b, p+3, length, true)
}

// decodeBody checks TFI+PD (length bytes from b[p]) and the DCS after them.
func decodeBody(b []byte, p, length int, ext bool) (f Frame, n int, err error, lenOK bool) {
	end := p + length + 1 // index just after DCS
	if end > len(b) {
		return Frame{}, end + 1, ErrTruncated, true
	}
	var sum byte
	for _, c := range b[p:end] {
		sum += c
	}
	if sum != 0 {
		return Frame{}, minInt(end+1, len(b)), ErrDCS, true
	}
	n = minInt(end+1, len(b))
	tfi := b[p]
	switch {
	case tfi == ErrorTFI && length == 1:
		return Frame{Kind: Error, Extended: ext, TFI: tfi}, n, nil, true
	case tfi == HostToPN532 || tfi == PN532ToHost:
		return Frame{Kind: Info, Extended: ext, TFI: tfi, Data: b[p+1 : end-1]}, n, nil, true
	}
	return Frame{}, n, ErrFormat, true
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}
