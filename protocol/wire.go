package protocol

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The Result's encoder, written out: central encodes one per checkin, and
// encoding/json's reflection and sorted map were a tenth of the ingest's
// processor time per checkin. Its output is encoding/json's, byte for byte
// (TestResultEncodeMatchesJSON, FuzzResultEncode), since a stored Result
// is compared with its replay.

// Encode returns the wire form.
func (r Result) Encode() []byte {
	b := make([]byte, 0, 96+len(r.ID)+len(r.Status)+64*len(r.EndUserMessage))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"status":`...)
	b = appendString(b, r.Status)
	b = append(b, `,"newPoints":`...)
	b = strconv.AppendInt(b, int64(r.NewPoints), 10)
	b = append(b, `,"totalPoints":`...)
	b = strconv.AppendInt(b, int64(r.TotalPoints), 10)
	if len(r.EndUserMessage) > 0 {
		b = append(b, `,"endUserMessage":{`...)
		var kb [4]string // the kiosk's languages fit: no allocation
		keys := kb[:0]
		for k := range r.EndUserMessage {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.EndUserMessage[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string as encoding/json writes it
// without HTML escaping: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// The Checkin's and the Result's decoders, written out for the shape our
// programs send: one object, each field once and spelled as the contract
// spells it, strings of valid UTF-8 without escapes, integers without
// fraction or exponent. Anything else (an escape, a null, another key, a
// duplicate, a nested value where none belongs, invalid UTF-8) is left to
// encoding/json, which is the reference: where decodeCheckinFast answers, it answers as json.Unmarshal
// would (FuzzDecodeCheckinFast, FuzzDecodeResultFast), and where it does
// not, json.Unmarshal is what answers. Central decodes a checkin per tap,
// a kiosk a Result: with encoding/json, the two were an eighth of the
// ingest benchmark's processor time (its kiosks' side included).

// decodeCheckinFast is the Checkin of b, or ok false where b is not in the
// plain shape (malformed or not).
func decodeCheckinFast(b []byte) (c Checkin, ok bool) {
	d := plainDecoder{b: b}
	var seen uint16
	if !d.object(func(key []byte) bool {
		var bit uint16
		var ok bool
		switch string(key) {
		case "v":
			bit, ok = 1<<0, d.integer(&c.V)
		case "id":
			bit, ok = 1<<1, d.strInto(&c.ID)
		case "deviceId":
			bit, ok = 1<<2, d.strInto(&c.DeviceID)
		case "seq":
			bit, ok = 1<<3, d.integer64(&c.Seq)
		case "chipNumber":
			bit, ok = 1<<4, d.strInto(&c.ChipNumber)
		case "eventId":
			bit, ok = 1<<5, d.strInto(&c.EventID)
		case "counterId":
			bit, ok = 1<<6, d.strInto(&c.CounterID)
		case "tappedAt":
			bit, ok = 1<<7, d.strInto(&c.TappedAt)
		case "clockSynced":
			bit, ok = 1<<8, d.boolean(&c.ClockSynced)
		case "bootId":
			bit, ok = 1<<9, d.strInto(&c.BootID)
		case "uptimeMs":
			bit, ok = 1<<10, d.integer64(&c.UptimeMs)
		default:
			return false // json matches keys without regard to case
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}) || !d.end() {
		return Checkin{}, false
	}
	return c, true
}

// plainDecoder reads the plain shape of JSON of decodeCheckinFast; each
// method reports false where the input leaves that shape.
type plainDecoder struct {
	b []byte
	i int
}

// space skips JSON's whitespace.
func (d *plainDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// skip consumes the byte c after any space.
func (d *plainDecoder) skip(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string of valid UTF-8 without escapes or control
// characters (encoding/json takes those bytes as they are); it aliases b.
func (d *plainDecoder) str() ([]byte, bool) {
	if !d.skip('"') {
		return nil, false
	}
	start, ascii := d.i, true
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		if c == '"' {
			s := d.b[start:d.i]
			d.i++
			return s, ascii || utf8.Valid(s) // invalid: json writes U+FFFD
		}
		if c < 0x20 || c == '\\' {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return nil, false
}

// strInto reads a string (str) into v.
func (d *plainDecoder) strInto(v *string) bool {
	s, ok := d.str()
	if ok {
		*v = string(s)
	}
	return ok
}

// number reads an integer as JSON writes one: -?(0|[1-9][0-9]*), in range.
func (d *plainDecoder) number() (int64, bool) {
	d.space()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || d.b[digits] == '0' && d.i-digits > 1 {
		return 0, false
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	return n, err == nil
}

// integer64 reads a number into v.
func (d *plainDecoder) integer64(v *int64) bool {
	n, ok := d.number()
	if ok {
		*v = n
	}
	return ok
}

// integer reads a number into v; one that does not fit an int (32-bit
// hosts) is left to encoding/json, which reports it.
func (d *plainDecoder) integer(v *int) bool {
	n, ok := d.number()
	if ok && int64(int(n)) == n {
		*v = int(n)
		return true
	}
	return false
}

// boolean reads true or false into v.
func (d *plainDecoder) boolean(v *bool) bool {
	d.space()
	switch {
	case bytes.HasPrefix(d.b[d.i:], []byte("true")):
		*v, d.i = true, d.i+4
	case bytes.HasPrefix(d.b[d.i:], []byte("false")):
		*v, d.i = false, d.i+5
	default:
		return false
	}
	return true
}

// decodeResultFast is the Result of b, or ok false where b is not in the
// plain shape (malformed or not). Its endUserMessage is an object of
// strings; a key repeated in it keeps the last value, as in encoding/json.
func decodeResultFast(b []byte) (r Result, ok bool) {
	d := plainDecoder{b: b}
	var seen uint8
	if !d.object(func(key []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case "v":
			bit, ok = 1<<0, d.integer(&r.V)
		case "id":
			bit, ok = 1<<1, d.strInto(&r.ID)
		case "status":
			bit, ok = 1<<2, d.strInto(&r.Status)
		case "newPoints":
			bit, ok = 1<<3, d.integer(&r.NewPoints)
		case "totalPoints":
			bit, ok = 1<<4, d.integer(&r.TotalPoints)
		case "endUserMessage":
			bit, ok = 1<<5, d.stringMap(&r.EndUserMessage)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}) || !d.end() {
		return Result{}, false
	}
	return r, true
}

// stringMap reads an object of strings into a new map at v.
func (d *plainDecoder) stringMap(v *map[string]string) bool {
	m := map[string]string{}
	if !d.object(func(key []byte) bool {
		val, ok := d.str()
		m[string(key)] = string(val)
		return ok
	}) {
		return false
	}
	*v = m
	return true
}

// object reads an object, calling field with each key once the decoder
// stands at its value; false where the input leaves the plain shape or
// field says so.
func (d *plainDecoder) object(field func(key []byte) bool) bool {
	if !d.skip('{') {
		return false
	}
	for first := true; ; first = false {
		if d.skip('}') {
			return true
		}
		if !first && !d.skip(',') {
			return false
		}
		key, ok := d.str()
		if !ok || !d.skip(':') || !field(key) {
			return false
		}
	}
}

// end reports whether only space is left.
func (d *plainDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}
