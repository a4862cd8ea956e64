package protocol

import (
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
		keys := make([]string, 0, len(r.EndUserMessage))
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
