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
	"strings"
	"sync"
	"unicode"

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
	// Headlines stay bold: a message that leaves no room for one is split
	// into pages instead.
	r.headline = []*Face{p(fs.f9x15B, 1), p(fs.f7x13B, 1), p(fs.f6x13B, 1)}
	r.title = []*Face{p(fs.f7x13B, 1), p(fs.f6x13B, 1), p(fs.f6x10, 1)}
	// 6×10 is the least a passholder reads within a hold (capitals 7 px,
	// about 1.2 mm on the 0.96-inch panel): text that does not fit in it is
	// cut (event titles) or split into pages (central's messages), never
	// set smaller. 5×8 only numbers the pages.
	r.body = []*Face{p(fs.f6x10, 1)}
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
	ic, pages := r.paginate(s)
	p := min(max(s.Page, 0), len(pages)-1)
	skipped = r.drawBlocks(dst, ic, pages[p])
	if len(pages) > 1 {
		r.drawPageMark(dst, ic, p, len(pages))
	}
	return skipped
}

// Pages is how many pages s takes: one, unless central's message does not
// fit beside the headline in a legible face.
func (r *Renderer) Pages(s display.Screen) int {
	if s.Kind == display.Spaarcode {
		return 1
	}
	_, pages := r.paginate(s)
	return len(pages)
}

// maxPages bounds a message's pages (a hold each); what is left is cut.
const maxPages = 4

// paginate lays s out as pages of blocks. A screen without central's
// message is one page. A message that does not fit whole in the legible
// face is split by lines: the first page under the headline, the next ones
// alone beside the icon, preferring to end a page where a sentence ends. On
// the saved screen the figure and its caption stay on every page, over one
// line of the message each.
func (r *Renderer) paginate(s display.Screen) (*icon, [][]block) {
	t := display.Words(s)
	ic, blocks := r.compose(s, t)
	if s.Message == "" || s.Kind == display.Provisioning || len(t.Lines) != 1 || len(blocks) < 2 {
		return ic, [][]block{blocks}
	}
	area := r.textArea(ic)
	head, msg := blocks[:len(blocks)-1], blocks[len(blocks)-1]
	face := r.body[len(r.body)-1]
	lines, _, _ := wrap(face, msg.text, area.Dx(), 0)
	page := func(bs []block, chunk []string) []block {
		m := msg
		m.text, m.pre, m.faces = "", chunk, []*Face{face}
		return append(append([]block(nil), bs...), m)
	}
	if s.Kind == display.Saved && r.h >= 48 {
		if len(lines) <= 1 {
			return ic, [][]block{blocks}
		}
		var pages [][]block
		for _, chunk := range splitPages(lines, 1, 1, face, area.Dx()) {
			pages = append(pages, page(head, chunk))
		}
		return ic, pages
	}
	if _, ok := fitWhole(blocks, area); ok {
		return ic, [][]block{blocks}
	}
	// The headline as large as leaves room for two lines of the message
	// (one on a small panel).
	var ls []laid
	for _, n := range []int{2, 1} {
		if ls = fit(head, area.Dx(), area.Dy()-msg.gap-n*face.Height()); len(ls) == len(head) {
			break
		}
	}
	if len(ls) != len(head) {
		return ic, [][]block{blocks} // no room for a headline: the layout cuts
	}
	// Split, each sentence starts a line of its own, so that pages can end
	// where sentences do.
	lines = nil
	for _, sentence := range sentences(msg.text) {
		ls, _, _ := wrap(face, sentence, area.Dx(), 0)
		lines = append(lines, ls...)
	}
	fixed := make([]block, len(head))
	headH := 0
	for i, l := range ls {
		fixed[i] = head[i]
		fixed[i].faces = []*Face{l.face}
		headH += l.gap + l.height()
	}
	first := max(1, (area.Dy()-headH-msg.gap)/face.Height())
	rest := max(1, area.Dy()/face.Height())
	var pages [][]block
	for i, chunk := range splitPages(lines, first, rest, face, area.Dx()) {
		if i == 0 {
			pages = append(pages, page(fixed, chunk))
			continue
		}
		pages = append(pages, []block{{pre: chunk, faces: []*Face{face}}})
	}
	if len(pages) == 0 { // a message of white space only
		return ic, [][]block{blocks}
	}
	return ic, pages
}

// splitPages splits lines into pages of first, then rest lines, at most
// maxPages (the last cut with an ellipsis). A page ends after a line that
// ends a sentence when one does in its second half.
func splitPages(lines []string, first, rest int, f *Face, w int) [][]string {
	var pages [][]string
	for n := first; len(lines) > 0; n = rest {
		if len(pages) == maxPages-1 && len(lines) > n {
			last := append([]string(nil), lines[:n-1]...)
			return append(pages, append(last, ellipsize(f, strings.Join(lines[n-1:], " "), w)))
		}
		if len(lines) <= n {
			return append(pages, lines)
		}
		end := n
		for i := n; i > n/2 && i > 1; i-- {
			if strings.ContainsAny(lines[i-1][len(lines[i-1])-1:], ".!?") {
				end = i
				break
			}
		}
		pages = append(pages, lines[:end])
		lines = lines[end:]
	}
	return pages
}

// sentences splits s after each full stop, question or exclamation mark
// that a space and a capital follow.
func sentences(s string) []string {
	var out []string
	words := fields(s)
	start := 0
	for i := 0; i+1 < len(words); i++ {
		w, next := words[i], []rune(words[i+1])
		if strings.ContainsAny(w[len(w)-1:], ".!?") && unicode.IsUpper(next[0]) {
			out = append(out, strings.Join(words[start:i+1], " "))
			start = i + 1
		}
	}
	return append(out, strings.Join(words[start:], " "))
}

// textArea is where the words go: beside the icon when the panel has room
// for one.
func (r *Renderer) textArea(ic *icon) image.Rectangle {
	area := r.margin()
	if ic == nil || r.h < 48 {
		return area
	}
	return image.Rect(area.Min.X+ic.w*r.k+4*r.k, area.Min.Y, area.Max.X, area.Max.Y)
}

// drawPageMark numbers the page ("1/2") under the icon, so that the
// passholder knows more follows; without an icon there is no room for it.
func (r *Renderer) drawPageMark(dst *image1bit.VerticalLSB, ic *icon, p, n int) {
	if ic == nil || r.h < 48 {
		return
	}
	f := r.small[0]
	mark := fmt.Sprintf("%d/%d", p+1, n)
	area := r.margin()
	f.Draw(dst, area.Min.X+max(0, (ic.w*r.k-f.Measure(mark))/2), area.Max.Y-f.Height(), mark)
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
		// One line is kept for the total before it comes, so that the
		// figure does not move when it does.
		detail := block{faces: r.body, minLines: 1, gap: g}
		if len(t.Lines) > 0 {
			detail.text = t.Lines[0]
		}
		return iconCheck, []block{
			{text: t.Figure, faces: r.figure, maxLines: 1, tight: true},
			{text: t.Caption, faces: r.title, maxLines: 2, gap: g + r.k},
			detail,
		}
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
		text := r.textArea(ic)
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
		if blocks[i].pre != nil {
			if len(l.lines) != len(blocks[i].pre) {
				return ls, false
			}
			continue
		}
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
