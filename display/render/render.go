// Package render draws the core's screens as 1-bit images, the format of the
// SSD1306 (image1bit.VerticalLSB), at 128×64 and at other panel sizes.
//
// Text is set in the X11 misc-fixed bitmap fonts (public domain), spaced
// proportionally: 1-bit pixel fonts keep accents legible at 8–15 pixels where
// a thresholded outline font does not. Each screen is a stack of blocks
// (headline, details) that the layout fits by wrapping, then by stepping down
// font sizes, then by cutting with an ellipsis: a glyph is drawn whole or not
// at all.
package render

import (
	"errors"
	"fmt"
	"image"
	"sync"

	"github.com/boombuler/barcode/qr"
	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
)

// Opts sets the panel size.
type Opts struct {
	Width, Height int
}

// DefaultOpts is the kiosk's 128×64 SSD1306.
var DefaultOpts = Opts{Width: 128, Height: 64}

// ErrSize is returned for a panel too small to show a screen.
var ErrSize = errors.New("render: panel size out of range")

// Renderer draws screens. It is safe for concurrent use.
type Renderer struct {
	w, h  int
	k     int // scale of faces and icons: 1 up to 128×64, 2 from 256×128
	fonts *fontSet

	// Faces by role; ladders largest first.
	headline, title, body, small, figure, code []*Face

	qrMu   sync.Mutex
	qrCode string
	qrMod  [][]bool // module matrix of qrCode, nil when it cannot be encoded
}

// New returns a renderer for o (DefaultOpts when nil).
func New(o *Opts) (*Renderer, error) {
	if o == nil {
		o = &DefaultOpts
	}
	if o.Width < 64 || o.Height < 32 || o.Width > 1024 || o.Height > 1024 {
		return nil, fmt.Errorf("%w: %dx%d", ErrSize, o.Width, o.Height)
	}
	fs, err := loadFonts()
	if err != nil {
		return nil, err
	}
	r := &Renderer{w: o.Width, h: o.Height, fonts: fs}
	r.k = max(1, min(o.Width/128, o.Height/64))
	k := r.k
	p := func(f *bitmapFont, s int) *Face { return newFace(f, true, s*k) }
	r.headline = []*Face{p(fs.f9x15B, 1), p(fs.f7x13B, 1), p(fs.f6x13B, 1), p(fs.f6x10, 1)}
	r.title = []*Face{p(fs.f7x13B, 1), p(fs.f6x13B, 1), p(fs.f6x10, 1)}
	r.body = []*Face{p(fs.f6x10, 1), p(fs.f5x8, 1)}
	r.small = []*Face{p(fs.f5x8, 1)}
	r.figure = []*Face{p(fs.f9x15B, 2), p(fs.f7x13B, 2), p(fs.f9x15B, 1)}
	r.code = []*Face{newFace(fs.f9x15B, false, k), newFace(fs.f7x13B, false, k), p(fs.f6x10, 1)}
	return r, nil
}

// Bounds is the panel's rectangle.
func (r *Renderer) Bounds() image.Rectangle { return image.Rect(0, 0, r.w, r.h) }

func (r *Renderer) String() string { return fmt.Sprintf("render(%dx%d)", r.w, r.h) }

// Render returns s drawn on a new image.
func (r *Renderer) Render(s display.Screen) *image1bit.VerticalLSB {
	img := image1bit.NewVerticalLSB(r.Bounds())
	r.Draw(img, s)
	return img
}

// Draw draws s on dst, which it clears first; dst must have r's bounds.
func (r *Renderer) Draw(dst *image1bit.VerticalLSB, s display.Screen) {
	r.draw(dst, s)
}

// draw is Draw reporting how many lines were left out for want of room;
// tests hold it to zero.
func (r *Renderer) draw(dst *image1bit.VerticalLSB, s display.Screen) (skipped int) {
	clear(dst.Pix)
	if s.Kind == display.Spaarcode {
		if ok, n := r.drawSpaarcode(dst, s); ok {
			return n
		}
		s.Kind = display.Idle // no code to show: the idle screen says what to do
	}
	t := display.Words(s)
	ic, blocks := r.compose(s, t)
	return r.drawBlocks(dst, ic, blocks)
}

// compose turns a screen's words into blocks and picks its icon.
func (r *Renderer) compose(s display.Screen, t display.Text) (*icon, []block) {
	g := 2 * r.k // gap between blocks
	lines := func(faces []*Face, maxLines int, mayCut bool) []block {
		var bs []block
		for _, l := range t.Lines {
			bs = append(bs, block{text: l, faces: faces, maxLines: maxLines, mayCut: mayCut, gap: g})
		}
		return bs
	}
	// Central's endUserMessage replaces the detail lines and must be read
	// whole; an event title may be cut.
	detail := func() []block {
		if s.Message != "" {
			return lines(r.body, 0, false)
		}
		return lines(r.body, 2, true)
	}
	head := func(text string) block { return block{text: text, faces: r.headline, maxLines: 2} }

	switch s.Kind {
	case display.Idle:
		return nil, append([]block{head(t.Title)}, detail()...)
	case display.Saved:
		if r.h < 48 { // no room for a figure above its caption
			return iconCheck, append([]block{head(t.Title)}, lines(r.body, 0, false)...)
		}
		bs := []block{
			{text: t.Figure, faces: r.figure, maxLines: 1, tight: true},
			{text: t.Caption, faces: r.title, maxLines: 2, gap: g + r.k},
		}
		return iconCheck, append(bs, lines(r.body, 0, false)...)
	case display.AlreadySaved:
		return iconAgain, append([]block{head(t.Title)}, detail()...)
	case display.Blocked:
		return iconCross, append([]block{head(t.Title)}, detail()...)
	case display.NotRecognised, display.Unreadable:
		return iconQuestion, append([]block{head(t.Title)}, detail()...)
	case display.NoEvent, display.NotAllowed:
		return iconClock, append([]block{head(t.Title)}, detail()...)
	case display.QueueFull, display.StorageError, display.Fault:
		return iconWarning, append([]block{head(t.Title)}, detail()...)
	case display.Provisioning:
		p := display.Words(display.Screen{Kind: display.Provisioning, Lang: s.Lang})
		// The pairing code is what the technician types: it goes before the
		// device id, which the layout drops first when room runs out.
		bs := []block{{text: p.Title, faces: r.title, maxLines: 2}}
		if s.Code != "" {
			bs = append(bs, block{text: s.Code, faces: r.code, maxLines: 2, gap: g + r.k})
		}
		if s.DeviceID != "" {
			bs = append(bs, block{text: t.Lines[0], faces: r.body, maxLines: 2, mayCut: true, gap: g})
		}
		if s.Message != "" {
			bs = append(bs, block{text: s.Message, faces: r.body, gap: g})
		}
		return nil, bs
	}
	return nil, append([]block{head(t.Title)}, detail()...)
}

// margin keeps text off the panel's edge, where many modules' glass hides a
// pixel or two.
func (r *Renderer) margin() image.Rectangle {
	return image.Rect(2*r.k, r.k, r.w-2*r.k, r.h-r.k)
}

func (r *Renderer) drawBlocks(dst *image1bit.VerticalLSB, ic *icon, blocks []block) int {
	area := r.margin()
	if ic != nil && r.h >= 48 {
		iconBox := ic.w*r.k + 4*r.k
		text := image.Rect(area.Min.X+iconBox, area.Min.Y, area.Max.X, area.Max.Y)
		if ls, ok := fitWhole(blocks, text); ok {
			ic.draw(dst, area.Min.X, area.Min.Y+(area.Dy()-ic.h*r.k)/2, r.k)
			return draw(dst, text, ls)
		}
	}
	return draw(dst, area, fit(blocks, area.Dx(), area.Dy()))
}

// fitWhole lays blocks out in area and reports whether nothing had to be cut
// or dropped that the blocks do not allow.
func fitWhole(blocks []block, area image.Rectangle) ([]laid, bool) {
	ls := fit(blocks, area.Dx(), area.Dy())
	if len(ls) != len(blocks) {
		return ls, false
	}
	for i, l := range ls {
		lines, cut, wide := wrap(l.face, blocks[i].text, area.Dx(), blocks[i].maxLines)
		if wide || (cut && !blocks[i].mayCut) || len(lines) != len(l.lines) {
			return ls, false
		}
	}
	return ls, true
}

// maxQRLen bounds the checkinCode put in a QR code; longer ones are not
// encoded (a QR code that large is unreadable on a 64-pixel panel anyway).
const maxQRLen = 256

// modules returns the QR module matrix for code, cached for the last code.
func (r *Renderer) modules(code string) [][]bool {
	r.qrMu.Lock()
	defer r.qrMu.Unlock()
	if code == r.qrCode && r.qrMod != nil {
		return r.qrMod
	}
	r.qrCode, r.qrMod = code, nil
	if code == "" || len(code) > maxQRLen {
		return nil
	}
	// Level M survives a scratch on the glass; L buys room for long codes.
	for _, lvl := range []qr.ErrorCorrectionLevel{qr.M, qr.L} {
		bc, err := qr.Encode(code, lvl, qr.Auto)
		if err != nil {
			continue
		}
		b := bc.Bounds()
		if b.Dx()+2 > r.h && lvl == qr.M {
			continue // try the smaller L code
		}
		m := make([][]bool, b.Dy())
		for y := range m {
			m[y] = make([]bool, b.Dx())
			for x := range m[y] {
				rr, _, _, _ := bc.At(b.Min.X+x, b.Min.Y+y).RGBA()
				m[y][x] = rr < 0x8000
			}
		}
		r.qrMod = m
		break
	}
	return r.qrMod
}

// drawSpaarcode draws the QR code on a lit square at the left (dark modules
// on light, as phone scanners expect) and the words beside it. It reports
// false when the code cannot be shown, and how many lines of words were
// left out.
func (r *Renderer) drawSpaarcode(dst *image1bit.VerticalLSB, s display.Screen) (bool, int) {
	m := r.modules(s.Code)
	if m == nil {
		return false, 0
	}
	n := len(m)
	side := r.h
	q := side / (n + 2) // at least one module of quiet zone each side
	if q < 1 || side > r.w {
		return false, 0
	}
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			setPixel(dst, x, y)
		}
	}
	off := (side - n*q) / 2
	for y, row := range m {
		for x, dark := range row {
			if !dark {
				continue
			}
			for dy := 0; dy < q; dy++ {
				for dx := 0; dx < q; dx++ {
					clearPixel(dst, off+x*q+dx, off+y*q+dy)
				}
			}
		}
	}
	t := display.Words(s)
	area := image.Rect(side+3*r.k, r.k, r.w-r.k, r.h-r.k)
	if area.Dx() < 24 {
		return true, 0
	}
	blocks := []block{{text: t.Title, faces: r.title, maxLines: 3}}
	for _, l := range t.Lines {
		blocks = append(blocks, block{text: l, faces: r.body, maxLines: 3, gap: 3 * r.k})
	}
	return true, draw(dst, area, fit(blocks, area.Dx(), area.Dy()))
}

// Pages is how many pages s takes: one, unless central's message does not
// fit at a legible size beside the headline.
func (r *Renderer) Pages(s display.Screen) int { return 1 }
