package render

import (
	"image"
	"strings"
	"testing"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
)

// minXHeight is the x-height, in pixels, of the least face a passholder
// reads within a hold on the 0.96-inch panel (6×10: 5 px, capitals 7 px,
// about 1.2 mm). 5×8 has 4.
const minXHeight = 5

// textBands finds the lines of text inside r: runs of rows with ink, an
// accent or apostrophe standing apart above a line counted with it.
func textBands(img *image1bit.VerticalLSB, r image.Rectangle) [][2]int {
	var raw [][2]int
	start := -1
	for y := r.Min.Y; y <= r.Max.Y; y++ {
		ink := false
		for x := r.Min.X; x < r.Max.X && y < r.Max.Y; x++ {
			if img.BitAt(x, y) {
				ink = true
				break
			}
		}
		switch {
		case ink && start < 0:
			start = y
		case !ink && start >= 0:
			raw = append(raw, [2]int{start, y})
			start = -1
		}
	}
	var bands [][2]int
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		for b[1]-b[0] <= 3 && i+1 < len(raw) && raw[i+1][0]-b[1] <= 2 {
			i++
			b[1] = raw[i][1]
		}
		bands = append(bands, b)
	}
	return bands
}

// xHeight measures a line of text from its pixels: the most common lowest
// ink row of its columns is the baseline, the most common highest the top of
// the lower-case letters.
func xHeight(img *image1bit.VerticalLSB, r image.Rectangle, band [2]int) int {
	tops, bottoms := map[int]int{}, map[int]int{}
	for x := r.Min.X; x < r.Max.X; x++ {
		top, bottom := -1, -1
		for y := band[0]; y < band[1]; y++ {
			if img.BitAt(x, y) {
				if top < 0 {
					top = y
				}
				bottom = y
			}
		}
		if top >= 0 && bottom > top { // a hyphen's or a bar's columns say nothing
			tops[top]++
			bottoms[bottom]++
		}
	}
	mode := func(m map[int]int) int {
		best, n := 0, -1
		for k, v := range m {
			if v > n || v == n && k < best {
				best, n = k, v
			}
		}
		return best
	}
	return mode(bottoms) - mode(tops) + 1
}

// wordsArea is where a screen's words are drawn (the QR code and the icon
// column left out).
func (r *Renderer) wordsArea(s display.Screen) image.Rectangle {
	if s.Kind == display.Spaarcode && s.Code != "" {
		return image.Rect(r.h+3*r.k, r.k, r.w-r.k, r.h-r.k)
	}
	ic, _ := r.paginate(s)
	return r.textArea(ic)
}

// TestXHeightMeasure: the pixel measure tells the legible face from the
// small one, so the legibility test below can fail.
func TestXHeightMeasure(t *testing.T) {
	fs, err := loadFonts()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    *bitmapFont
		want int
	}{{fs.f5x8, 4}, {fs.f6x10, 5}} {
		img := image1bit.NewVerticalLSB(image.Rect(0, 0, 128, 20))
		newFace(tc.f, true, 1).Draw(img, 2, 2, "Deze activiteit is afgelopen.")
		bands := textBands(img, img.Bounds())
		if len(bands) != 1 {
			t.Fatalf("%s: %d bands", tc.f.name, len(bands))
		}
		if got := xHeight(img, img.Bounds(), bands[0]); got != tc.want {
			t.Errorf("%s: x-height %d, want %d", tc.f.name, got, tc.want)
		}
	}
}

// TestEveryScreenLegible renders every screen, page by page, in every
// language at 128×64 and reads the pixels back: every line of words has at
// least the legible x-height, nothing is lit in the margin the glass may
// hide, no line is left out, and central's message is all there, uncut.
func TestEveryScreenLegible(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	margin := r.margin()
	for _, sm := range Samples() {
		s := sm.Screen
		pages := r.Pages(s)
		var shown []string
		for p := range pages {
			s.Page = p
			img := image1bit.NewVerticalLSB(r.Bounds())
			if n := r.draw(img, s); n != 0 {
				t.Errorf("%s page %d: %d lines left out", sm.Name, p+1, n)
			}
			area := r.wordsArea(s)
			bands := textBands(img, area)
			if len(bands) == 0 {
				t.Errorf("%s page %d: no words", sm.Name, p+1)
			}
			for _, b := range bands {
				if b[1]-b[0] > 16 {
					continue // the saved figure: large by design
				}
				if xh := xHeight(img, area, b); xh < minXHeight {
					t.Errorf("%s page %d: a line at rows %d–%d has x-height %d px, want at least %d", sm.Name, p+1, b[0], b[1], xh, minXHeight)
				}
			}
			if s.Kind != display.Spaarcode {
				for y := 0; y < r.h; y++ {
					for x := 0; x < r.w; x++ {
						if bool(img.BitAt(x, y)) && !image.Pt(x, y).In(margin) {
							t.Fatalf("%s page %d: pixel (%d,%d) lit in the margin", sm.Name, p+1, x, y)
						}
					}
				}
			}
			_, laid := r.paginate(s)
			for _, b := range laid[p] {
				shown = append(shown, b.pre...)
			}
		}
		if s.Message == "" || s.Kind == display.Saved {
			continue
		}
		want := display.Words(sm.Screen).Lines[0]
		if pages > 1 {
			if got := strings.Join(shown, " "); got != strings.Join(fields(want), " ") {
				t.Errorf("%s: pages show %q, want %q", sm.Name, got, want)
			}
		}
		if strings.Contains(strings.Join(shown, " "), ellipsis) {
			t.Errorf("%s: message cut: %q", sm.Name, shown)
		}
	}
}

// TestLongMessagePages: a message too long for one screen in the legible
// face takes pages, numbered under the icon; a page past the last shows the
// last.
func TestLongMessagePages(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := display.Screen{Kind: display.NotAllowed, Message: "Je punt is niet gespaard. De klok van deze zuil loopt fout. Meld je aan de balie."}
	if n := r.Pages(s); n != 2 {
		t.Fatalf("%d pages, want 2", n)
	}
	mark := func(img *image1bit.VerticalLSB) int {
		n := 0
		for y := r.h - 10; y < r.h; y++ {
			for x := 0; x < 20; x++ {
				if img.BitAt(x, y) {
					n++
				}
			}
		}
		return n
	}
	one := r.Render(display.Screen{Kind: display.NotAllowed, Message: "Deze activiteit is afgelopen."})
	first := r.Render(s)
	s.Page = 1
	second := r.Render(s)
	s.Page = 7
	last := r.Render(s)
	if mark(one) != 0 || mark(first) == 0 || mark(second) == 0 {
		t.Errorf("page marks: one page %d, paged %d and %d pixels", mark(one), mark(first), mark(second))
	}
	if string(first.Pix) == string(second.Pix) || string(second.Pix) != string(last.Pix) {
		t.Error("pages not distinct, or a page past the last is not the last")
	}
	// Four pages at most, the last cut.
	s = display.Screen{Kind: display.NotAllowed, Message: strings.Repeat("Een heel lange zin. ", 40)}
	if n := r.Pages(s); n != maxPages {
		t.Errorf("%d pages, want %d", n, maxPages)
	}
}

// TestSavedLayoutStable: when the total comes, or central's one-line
// message, the figure, its caption and the tick stay where they were:
// every pixel lit before is lit after.
func TestSavedLayoutStable(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range display.Languages {
		for _, points := range []int{1, 12} {
			before := r.Render(display.Screen{Kind: display.Saved, Lang: lang, Points: points})
			for _, after := range []display.Screen{
				{Kind: display.Saved, Lang: lang, Points: points, HasTotal: true, Total: 23},
				{Kind: display.Saved, Lang: lang, Points: points, HasTotal: true, Total: 1250},
				{Kind: display.Saved, Lang: lang, Points: points, HasTotal: true, Total: 1250, Message: "Totaal: 1250\u00a0punten"},
			} {
				img := r.Render(after)
				for y := 0; y < r.h; y++ {
					for x := 0; x < r.w; x++ {
						if bool(before.BitAt(x, y)) && !bool(img.BitAt(x, y)) {
							t.Fatalf("%s +%d: pixel (%d,%d) moved when %+v came", lang, points, x, y, after)
						}
					}
				}
			}
		}
	}
}

// TestDotsAreSquare: the small faces' full stop and colon are square dots,
// not the 3×3 plus signs of misc-fixed ("Totaal+ 1+").
func TestDotsAreSquare(t *testing.T) {
	fs, err := loadFonts()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*bitmapFont{fs.f5x8, fs.f6x10} {
		for _, tc := range []struct {
			s    string
			dots int
		}{{".", 1}, {":", 2}} {
			img := image1bit.NewVerticalLSB(image.Rect(0, 0, 16, 16))
			newFace(f, true, 1).Draw(img, 4, 2, tc.s)
			var lit []image.Point
			for y := range 16 {
				for x := range 16 {
					if img.BitAt(x, y) {
						lit = append(lit, image.Pt(x, y))
					}
				}
			}
			if len(lit) != 4*tc.dots {
				t.Errorf("%s %q: %d pixels lit, want %d (2×2 each)", f.name, tc.s, len(lit), 4*tc.dots)
				continue
			}
			for i := 0; i < len(lit); i += 2 {
				// Rows of a 2×2 square: two neighbours side by side.
				if lit[i+1] != lit[i].Add(image.Pt(1, 0)) {
					t.Errorf("%s %q: not square dots: %v", f.name, tc.s, lit)
					break
				}
			}
		}
	}
}

// TestNoBreakSpaceHolds: a line never breaks at a no-break space, so a
// number stays with its word.
func TestNoBreakSpaceHolds(t *testing.T) {
	fs, err := loadFonts()
	if err != nil {
		t.Fatal(err)
	}
	f := newFace(fs.f6x10, true, 1)
	s := "Totaal: 1250\u00a0punten"
	lines, _, _ := wrap(f, s, f.Measure("Totaal: 1250")+2, 0)
	if len(lines) != 2 || lines[1] != "1250\u00a0punten" {
		t.Fatalf("lines %q", lines)
	}
	lines, _, _ = wrap(f, "Point déjà épargné\u00a0: max.\u00a01 par semaine", f.Measure("Point déjà épargné")+2, 0)
	if lines[0] != "Point déjà" || !strings.HasPrefix(lines[1], "épargné\u00a0: max.\u00a01") {
		t.Fatalf("lines %q", lines)
	}
}
