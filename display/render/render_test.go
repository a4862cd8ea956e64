package render

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
)

var update = flag.Bool("update", false, "rewrite the golden PNGs in testdata/golden")

// sizes are the panels the goldens cover beyond every sample at 128×64.
var extraSizes = []Opts{{128, 32}, {256, 64}, {256, 128}}

func TestGolden(t *testing.T) {
	check := func(t *testing.T, o Opts, prefix string, samples []Sample) {
		r, err := New(&o)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			name := prefix + s.Name
			t.Run(name, func(t *testing.T) {
				img := r.Render(s.Screen)
				path := filepath.Join("testdata", "golden", name+".png")
				if *update {
					data, err := EncodePNG(img, 1)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, data, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := readPNG(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if diff := diffImages(img, want); diff != "" {
					t.Errorf("differs from %s (go test -update rewrites it after you have looked):\n%s", path, diff)
				}
			})
		}
	}
	if *update {
		if err := os.MkdirAll(filepath.Join("testdata", "golden"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	check(t, DefaultOpts, "", Samples())
	var few []Sample
	for _, s := range Samples() {
		switch s.Name {
		case "nl-idle", "nl-spaarcode", "nl-saved-total", "fr-not-allowed", "nl-fault", "nl-provisioning":
			few = append(few, s)
		}
	}
	for _, o := range extraSizes {
		check(t, o, fmt.Sprintf("%dx%d-", o.Width, o.Height), few)
	}
}

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return png.Decode(f)
}

// diffImages compares lit pixels and, when they differ, draws both as text.
func diffImages(got *image1bit.VerticalLSB, want image.Image) string {
	if got.Bounds() != want.Bounds() {
		return fmt.Sprintf("size %v, want %v", got.Bounds(), want.Bounds())
	}
	n := 0
	var b strings.Builder
	for y := 0; y < got.Rect.Dy(); y++ {
		for x := 0; x < got.Rect.Dx(); x++ {
			r, _, _, _ := want.At(x, y).RGBA()
			w, g := r >= 0x8000, bool(got.BitAt(x, y))
			switch {
			case w == g && g:
				b.WriteByte('#')
			case w == g:
				b.WriteByte('.')
			case g:
				n++
				b.WriteByte('+') // lit, should not be
			default:
				n++
				b.WriteByte('-') // dark, should be lit
			}
		}
		b.WriteByte('\n')
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d pixels differ (+ extra, - missing):\n%s", n, b.String())
}

// nasty are inputs that try to overflow the layout.
var nasty = []display.Screen{
	{Kind: display.Idle, EventTitle: strings.Repeat("Supercalifragilisticexpialidocious", 4)},
	{Kind: display.Idle, EventTitle: strings.Repeat("Een heel lange titel ", 20)},
	{Kind: display.Idle, EventTitle: "Ω Ж 漢字 🎉 مرحبا Ελληνικά – emoji"},
	{Kind: display.Saved, Points: 1234567890, HasTotal: true, Total: -2147483648},
	{Kind: display.AlreadySaved, Message: strings.Repeat("Deze activiteit is afgelopen, je kan op deze activiteit geen punt meer sparen. ", 6)},
	{Kind: display.NotAllowed, Message: strings.Repeat("W", 400)},
	{Kind: display.Provisioning, DeviceID: strings.Repeat("kiosk-", 20), Code: strings.Repeat("9", 60)},
	{Kind: display.Spaarcode, Code: strings.Repeat("x", 200)},
	{Kind: display.Spaarcode, Code: strings.Repeat("x", 5000)},
	{Kind: display.Kind("unknown-kind")},
	{Kind: display.Fault, Lang: "xx", Message: "\n\n\t  "},
	{Kind: display.Blocked, Message: "\xff\xfe invalid utf-8 \xc3"},
}

// TestNothingClipped holds every sample and every nasty input, at every size,
// to the promise: lines are drawn whole or not at all, and none is left out
// for want of room (the layout cuts with an ellipsis instead).
func TestNothingClipped(t *testing.T) {
	screens := append([]display.Screen(nil), nasty...)
	for _, s := range Samples() {
		screens = append(screens, s.Screen)
	}
	for _, o := range append([]Opts{DefaultOpts}, extraSizes...) {
		r, err := New(&o)
		if err != nil {
			t.Fatal(err)
		}
		img := image1bit.NewVerticalLSB(r.Bounds())
		for i, s := range screens {
			if n := r.draw(img, s); n != 0 {
				t.Errorf("%dx%d screen %d (%s): %d lines left out", o.Width, o.Height, i, s.Kind, n)
			}
		}
	}
}

// TestLayoutFits checks the layout's own promise on the nasty inputs.
func TestLayoutFits(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range nasty {
		_, blocks := r.compose(s, display.Words(s))
		for _, w := range []int{40, 100, 124} {
			for _, h := range []int{20, 30, 62} {
				total := 0
				for _, l := range fit(blocks, w, h) {
					total += l.gap + l.height()
					for _, line := range l.lines {
						if lw := l.face.Measure(line); lw > w {
							t.Errorf("%s in %dx%d: line %q is %d wide", s.Kind, w, h, line, lw)
						}
					}
				}
				if total > h {
					t.Errorf("%s in %dx%d: %d tall", s.Kind, w, h, total)
				}
			}
		}
	}
}

func TestLongTitleEllipsis(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := display.Screen{Kind: display.Idle, EventTitle: strings.Repeat("Zomerconcert in het park ", 8)}
	_, blocks := r.compose(s, display.Words(s))
	ls := fit(blocks, 124, 62)
	if len(ls) != 2 {
		t.Fatalf("got %d blocks, want headline and title", len(ls))
	}
	if ls[0].lines[0] != "Houd je UiTPAS" {
		t.Errorf("headline %q", ls[0].lines)
	}
	last := ls[1].lines[len(ls[1].lines)-1]
	if !strings.HasSuffix(last, "…") || len(ls[1].lines) > 2 {
		t.Errorf("event title lines %q: want at most 2, the last ending in …", ls[1].lines)
	}
}

// TestGlyphsCovered: every letter of every phrase, in every language, is in
// every font (no fallback, let alone a box).
func TestGlyphsCovered(t *testing.T) {
	fs, err := loadFonts()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	text.WriteString("é è ç à ë ï ô ’ – … ‘ “ ” « » € ÿ œ Œ É È Ê À Ç Ô Û Ü ß")
	for _, s := range Samples() {
		w := display.Words(s.Screen)
		text.WriteString(w.Title + strings.Join(w.Lines, "") + s.Screen.Message + s.Screen.EventTitle)
	}
	for _, f := range []*bitmapFont{fs.f5x8, fs.f6x10, fs.f6x13B, fs.f7x13B, fs.f9x15B, fs.f10x20} {
		for _, r := range text.String() {
			if r != ' ' && f.glyphs[r] == nil {
				t.Errorf("font %s has no %q (U+%04X)", f.name, r, r)
			}
		}
	}
}

func TestFallback(t *testing.T) {
	fs, err := loadFonts()
	if err != nil {
		t.Fatal(err)
	}
	f := newFace(fs.f6x10, true, 1)
	// ǹ (U+01F9) is in the subset; ẽ (U+1EBD) is not: it falls back to e.
	if f.lookup('ẽ') != f.lookup('e') {
		t.Error("ẽ does not fall back to e")
	}
	if f.lookup('漢') != f.lookup('?') {
		t.Error("漢 does not fall back to ?")
	}
	if f.lookup(utf8.RuneError) == nil {
		t.Error("no glyph for the replacement character")
	}
}

func TestSpaarcodeQR(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	code := "https://uitpas.be/spaar/3f9a1c7e"
	img := r.Render(display.Screen{Kind: display.Spaarcode, Code: code})
	m := r.modules(code)
	if m == nil {
		t.Fatal("no QR modules")
	}
	n := len(m)
	q := 64 / (n + 2)
	if q < 2 {
		t.Fatalf("modules of %d pixels; want at least 2 at 128x64", q)
	}
	off := (64 - n*q) / 2
	for y := range n {
		for x := range n {
			// Dark modules are unlit pixels on the lit square.
			if lit := bool(img.BitAt(off+x*q, off+y*q)); lit == m[y][x] {
				t.Fatalf("module (%d,%d) dark=%v but pixel lit=%v", x, y, m[y][x], lit)
			}
		}
	}
	// Quiet zone lit.
	for i := range 64 {
		if !img.BitAt(i, 0) || !img.BitAt(0, i) {
			t.Fatal("quiet zone not lit")
		}
	}
	// Without a code the spaarcode screen falls back to idle.
	a := r.Render(display.Screen{Kind: display.Spaarcode, EventTitle: "X"})
	b := r.Render(display.Screen{Kind: display.Idle, EventTitle: "X"})
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Error("spaarcode without code is not the idle screen")
	}
}

func TestScreensDiffer(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, s := range Samples() {
		key := string(r.Render(s.Screen).Pix)
		if other, ok := seen[key]; ok {
			t.Errorf("%s looks the same as %s", s.Name, other)
		}
		seen[key] = s.Name
	}
}

func TestNewSize(t *testing.T) {
	for _, o := range []Opts{{0, 0}, {32, 64}, {128, 16}, {5000, 64}} {
		if _, err := New(&o); err == nil {
			t.Errorf("%v: no error", o)
		}
	}
}

func TestWriteAll(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAll(dir, nil, 2); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(Samples()) + 1; len(ents) != want {
		t.Errorf("%d files, want %d", len(ents), want)
	}
	img, err := readPNG(filepath.Join(dir, "nl-idle.png"))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 128 {
		t.Errorf("nl-idle.png is %v, want 256x128", b)
	}
	if _, err := readPNG(filepath.Join(dir, "contact-sheet.png")); err != nil {
		t.Fatal(err)
	}
}

func FuzzRender(f *testing.F) {
	r, err := New(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("idle", "Yoga in ’t park", "", "code")
	f.Add("saved", "", "Punt al gespaard", "")
	f.Add("spaarcode", "", "", "https://uitpas.be/x")
	img := image1bit.NewVerticalLSB(r.Bounds())
	f.Fuzz(func(t *testing.T, kind, title, msg, code string) {
		s := display.Screen{Kind: display.Kind(kind), EventTitle: title, Message: msg, Code: code, DeviceID: title, Points: len(msg)}
		if n := r.draw(img, s); n != 0 {
			t.Errorf("%d lines left out", n)
		}
	})
}

func BenchmarkRender(b *testing.B) {
	r, err := New(nil)
	if err != nil {
		b.Fatal(err)
	}
	img := image1bit.NewVerticalLSB(r.Bounds())
	for _, s := range []Sample{
		{"idle", display.Screen{Kind: display.Idle, EventTitle: "Yoga in ’t park"}},
		{"saved-total", display.Screen{Kind: display.Saved, Points: 1, HasTotal: true, Total: 23}},
		{"not-allowed-message", display.Screen{Kind: display.NotAllowed, Lang: "fr", Message: "L’horloge de cette borne n’est pas à l’heure\u00a0: votre point n’est pas épargné. Adressez-vous à l’accueil."}},
		{"spaarcode", display.Screen{Kind: display.Spaarcode, Code: "https://uitpas.be/spaar/3f9a1c7e-52b4-4d0a"}},
	} {
		b.Run(s.Name, func(b *testing.B) {
			for b.Loop() {
				r.Draw(img, s.Screen)
			}
		})
	}
}
