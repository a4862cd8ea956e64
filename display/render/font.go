package render

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"periph.io/x/devices/v3/ssd1306/image1bit"
)

//go:embed fonts/*.bdf
var fontFiles embed.FS

// glyph is one BDF bitmap. Rows are left-aligned bits, MSB first.
type glyph struct {
	w, h, xoff, yoff int
	adv              int
	rows             []uint32
	inkL, inkR       int // ink columns relative to the origin; inkR exclusive; equal when blank
}

// bitmapFont is a parsed BDF font. It is immutable once parsed and shared by
// every Face made from it.
type bitmapFont struct {
	name            string
	ascent, descent int
	capHeight       int
	glyphs          map[rune]*glyph
}

// Face is a font at one spacing and scale. Faces are immutable.
type Face struct {
	f     *bitmapFont
	prop  bool // proportional: advance from the ink, not the cell
	scale int
}

// parseBDF reads the subset of BDF that misc-fixed fonts use.
func parseBDF(name string, data []byte) (*bitmapFont, error) {
	f := &bitmapFont{name: name, glyphs: map[rune]*glyph{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var g *glyph
	enc := rune(-1)
	inBitmap := false
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch key := fields[0]; {
		case key == "FONT_ASCENT" && len(fields) > 1:
			f.ascent = atoi(fields[1])
		case key == "FONT_DESCENT" && len(fields) > 1:
			f.descent = atoi(fields[1])
		case key == "CAP_HEIGHT" && len(fields) > 1:
			f.capHeight = atoi(fields[1])
		case key == "STARTCHAR":
			g, enc, inBitmap = &glyph{}, -1, false
		case g == nil:
		case key == "ENCODING" && len(fields) > 1:
			enc = rune(atoi(fields[1]))
		case key == "DWIDTH" && len(fields) > 1:
			g.adv = atoi(fields[1])
		case key == "BBX" && len(fields) > 4:
			g.w, g.h, g.xoff, g.yoff = atoi(fields[1]), atoi(fields[2]), atoi(fields[3]), atoi(fields[4])
			if g.w > 32 || g.w < 0 || g.h < 0 || g.h > 64 {
				return nil, fmt.Errorf("render: font %s: glyph %d too large", name, enc)
			}
		case key == "BITMAP":
			inBitmap = true
		case key == "ENDCHAR":
			if enc >= 0 && len(g.rows) == g.h {
				g.ink()
				f.glyphs[enc] = g
			}
			g, inBitmap = nil, false
		case inBitmap:
			v, err := strconv.ParseUint(key, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("render: font %s: glyph %d: %w", name, enc, err)
			}
			g.rows = append(g.rows, uint32(v)<<(32-4*len(key)))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("render: font %s: %w", name, err)
	}
	if f.ascent <= 0 || f.glyphs['?'] == nil || f.glyphs[' '] == nil {
		return nil, fmt.Errorf("render: font %s: %w", name, errBadFont)
	}
	if f.capHeight == 0 {
		f.capHeight = f.ascent
	}
	return f, nil
}

var errBadFont = errors.New("missing metrics or glyphs")

func (g *glyph) ink() {
	var or uint32
	for _, r := range g.rows {
		or |= r
	}
	if or == 0 {
		return
	}
	left, right := 0, 31
	for or&(1<<(31-left)) == 0 {
		left++
	}
	for or&(1<<(31-right)) == 0 {
		right--
	}
	g.inkL, g.inkR = g.xoff+left, g.xoff+right+1
}

// The faces the layouts use, by cell size: 5x8 and 6x10 for detail, 6x13B and
// 7x13B bold for titles, 9x15B and 10x20 for headlines and figures.
type fontSet struct {
	f5x8, f6x10, f6x13B, f7x13B, f9x15B, f10x20 *bitmapFont
}

// loadFonts parses the embedded fonts once per process; the result is
// read-only and shared.
var loadFonts = sync.OnceValues(func() (*fontSet, error) {
	var fs fontSet
	for _, x := range []struct {
		name string
		dst  **bitmapFont
	}{
		{"5x8", &fs.f5x8}, {"6x10", &fs.f6x10}, {"6x13B", &fs.f6x13B},
		{"7x13B", &fs.f7x13B}, {"9x15B", &fs.f9x15B}, {"10x20", &fs.f10x20},
	} {
		data, err := fontFiles.ReadFile("fonts/" + x.name + ".bdf")
		if err != nil {
			return nil, fmt.Errorf("render: font %s: %w", x.name, err)
		}
		if *x.dst, err = parseBDF(x.name, data); err != nil {
			return nil, err
		}
		squareDots(*x.dst)
	}
	return &fs, nil
})

// squareDots redraws the full stop, colon and semicolon dots that the small
// misc-fixed faces draw as 3×3 plus signs (5x8's full stop, 6x10's three):
// on the panel "Totaal: 1." reads "Totaal+ 1+". Each becomes a 2×2 square
// on the plus's upper two rows, so a full stop still sits on the baseline.
func squareDots(f *bitmapFont) {
	for _, r := range ".:;" {
		g := f.glyphs[r]
		if g == nil {
			continue
		}
		for i := 0; i+2 < len(g.rows); i++ {
			a, b, c := g.rows[i], g.rows[i+1], g.rows[i+2]
			if a == 0 || a&(a-1) != 0 || c != a || b != a|a<<1|a>>1 {
				continue
			}
			g.rows[i], g.rows[i+1], g.rows[i+2] = a|a<<1, a|a<<1, 0
		}
		g.ink()
	}
}

func newFace(f *bitmapFont, prop bool, scale int) *Face {
	return &Face{f: f, prop: prop, scale: scale}
}

// Height is the line height in pixels.
func (fc *Face) Height() int { return (fc.f.ascent + fc.f.descent) * fc.scale }

// Ascent is the distance from the top of a line to its baseline.
func (fc *Face) Ascent() int { return fc.f.ascent * fc.scale }

// CapHeight is the height of capitals and figures above the baseline.
func (fc *Face) CapHeight() int { return fc.f.capHeight * fc.scale }

func (fc *Face) String() string {
	s := fc.f.name
	if fc.prop {
		s += "p"
	}
	if fc.scale > 1 {
		s += fmt.Sprintf("×%d", fc.scale)
	}
	return s
}

// lookup returns the glyph for r, falling back to its base letter (so a
// letter outside the subset keeps its shape, minus the accent) and then to
// '?': never an empty box.
func (fc *Face) lookup(r rune) *glyph {
	if g := fc.f.glyphs[r]; g != nil {
		return g
	}
	switch r {
	case '\u202f', '\u2007', '\u2009', '\u200a': // narrow and thin spaces
		return fc.f.glyphs[' ']
	}
	if d := norm.NFD.String(string(r)); d != string(r) {
		if b, _ := utf8.DecodeRuneInString(d); b != utf8.RuneError {
			if g := fc.f.glyphs[b]; g != nil {
				return g
			}
		}
	}
	return fc.f.glyphs['?']
}

// space is the gap between two glyphs of a proportional face.
func (fc *Face) spacing() int { return 1 }

// advance is how far r moves the pen, unscaled.
func (fc *Face) advance(r rune, g *glyph) int {
	if !fc.prop {
		return g.adv
	}
	if g.inkR == g.inkL { // blank: spaces keep a readable word gap
		if r == ' ' || r == '\u00a0' {
			return (g.adv + 1) / 2
		}
		return g.adv
	}
	return g.inkR - g.inkL + fc.spacing()
}

// runeWidth is the scaled advance of r, spacing included.
func (fc *Face) runeWidth(r rune) int { return fc.advance(r, fc.lookup(r)) * fc.scale }

// trail is the spacing after the last glyph, which Measure leaves out.
func (fc *Face) trail() int {
	if fc.prop {
		return fc.spacing() * fc.scale
	}
	return 0
}

// Measure returns the width of s in pixels, without trailing spacing.
func (fc *Face) Measure(s string) int {
	w := 0
	for _, r := range s {
		g := fc.lookup(r)
		w += fc.advance(r, g)
	}
	if fc.prop && w > 0 {
		w -= fc.spacing()
	}
	return w * fc.scale
}

// Draw draws s with the top of its line at (x, top). Pixels that fall outside
// dst are dropped; the layout makes sure none do.
func (fc *Face) Draw(dst *image1bit.VerticalLSB, x, top int, s string) {
	base := top + fc.f.ascent*fc.scale
	sc := fc.scale
	for _, r := range s {
		g := fc.lookup(r)
		ox := x + g.xoff*sc
		if fc.prop && g.inkR > g.inkL {
			ox = x + (g.xoff-g.inkL)*sc
		}
		gy := base - (g.yoff+g.h)*sc
		for row, bits := range g.rows {
			for col := 0; bits != 0; col++ {
				if bits&(1<<31) != 0 {
					px, py := ox+col*sc, gy+row*sc
					for dy := 0; dy < sc; dy++ {
						for dx := 0; dx < sc; dx++ {
							setPixel(dst, px+dx, py+dy)
						}
					}
				}
				bits <<= 1
			}
		}
		x += fc.advance(r, g) * sc
	}
}

// inkRows reports the first and last+1 rows, relative to the line's top,
// that s inks; tight layouts use it to trim empty space above figures.
func (fc *Face) inkRows(s string) (top, bottom int) {
	top, bottom = fc.Height(), 0
	asc := fc.f.ascent
	for _, r := range s {
		g := fc.lookup(r)
		first, last := -1, -1
		for i, bits := range g.rows {
			if bits != 0 {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		if first < 0 {
			continue
		}
		t := (asc - (g.yoff + g.h) + first) * fc.scale
		b := (asc - (g.yoff + g.h) + last + 1) * fc.scale
		top, bottom = min(top, t), max(bottom, b)
	}
	if bottom <= top {
		return 0, 0
	}
	return top, bottom
}

// setPixel lights (x, y) when it lies inside dst.
func setPixel(dst *image1bit.VerticalLSB, x, y int) { dst.SetBit(x, y, image1bit.On) }

// clearPixel darkens (x, y) when it lies inside dst.
func clearPixel(dst *image1bit.VerticalLSB, x, y int) { dst.SetBit(x, y, image1bit.Off) }
