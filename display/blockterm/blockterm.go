// Package blockterm shows the kiosk's screens on a terminal as the OLED would:
// the rendered 1-bit image in Unicode half blocks (▀ ▄ █), two pixel rows a
// character, so 128×64 becomes 128×32 characters, with the screen's words on
// a line underneath for logs and screen readers. Quadrant blocks (2×2 pixels
// a character) and braille dots (2×4) make the panel smaller: in braille
// 128×64 is 64×16 characters, which leaves an 80×24 terminal room for words.
//
// By default each screen is appended, scrolling, for a terminal shared with
// logs. InPlace redraws every screen over the previous one at the top of a
// terminal of its own, with a Footer (how to tap, say) that stays on screen
// underneath.
package blockterm

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/internal/mailbox"
	"github.com/uitpas/tap-kiosk/display/render"
)

// Opts configures the terminal output.
type Opts struct {
	Width, Height int // of the emulated panel; 128×64
	// InPlace redraws at the top of the terminal instead of scrolling:
	// cursor home, every line overwritten and cleared to its end, the rest
	// of the screen cleared. For a terminal of its own, not for one shared
	// with logs; the frame and footer must fit its height (see Fit).
	InPlace bool
	// Quadrants draws 2×2 pixels a character (▘▝▖▗…), so 128×64 fits an
	// 80-column terminal as 64×32 characters; pixels look twice as tall.
	Quadrants bool
	// Braille draws 2×4 pixels a character in braille dots (⣿), so 128×64
	// is 64×16 characters. It wins over Quadrants.
	Braille bool
	// Footer is written under every frame (its lines end in "\n" or not).
	Footer string
}

// DefaultOpts emulates the 128×64 panel, scrolling.
var DefaultOpts = Opts{Width: 128, Height: 64}

// Display draws screens on a terminal.
type Display struct {
	w    io.Writer
	o    Opts
	r    *render.Renderer
	img  *image1bit.VerticalLSB // drawn on by the worker only
	work *mailbox.Worker[display.Screen]
}

// New returns a terminal display writing to w; o may be nil.
func New(w io.Writer, o *Opts) (*Display, error) {
	opts := DefaultOpts
	if o != nil {
		opts = *o
	}
	r, err := render.New(&render.Opts{Width: opts.Width, Height: opts.Height})
	if err != nil {
		return nil, fmt.Errorf("blockterm: %w", err)
	}
	d := &Display{w: w, o: opts, r: r, img: image1bit.NewVerticalLSB(r.Bounds())}
	d.work = mailbox.NewWorker(d.draw)
	return d, nil
}

// Show hands s to the drawing goroutine and returns at once.
func (d *Display) Show(s display.Screen) { d.work.Put(s) }

// Halt draws a screen still waiting, then stops.
func (d *Display) Halt() error {
	d.work.Stop()
	return nil
}

func (d *Display) String() string { return "blockterm" }

func (d *Display) draw(s display.Screen) {
	d.r.Draw(d.img, s)
	io.WriteString(d.w, d.o.frame(d.img, s))
}

// Blocks returns img in half blocks, one line per two pixel rows, framed.
func Blocks(img *image1bit.VerticalLSB) string {
	b := img.Bounds()
	var sb strings.Builder
	sb.Grow((b.Dx() + 3) * 3 * (b.Dy()/2 + 2))
	sb.WriteString("┌" + strings.Repeat("─", b.Dx()) + "┐\n")
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		sb.WriteString("│")
		for x := b.Min.X; x < b.Max.X; x++ {
			top, bottom := bool(img.BitAt(x, y)), y+1 < b.Max.Y && bool(img.BitAt(x, y+1))
			switch {
			case top && bottom:
				sb.WriteString("█")
			case top:
				sb.WriteString("▀")
			case bottom:
				sb.WriteString("▄")
			default:
				sb.WriteByte(' ')
			}
		}
		sb.WriteString("│\n")
	}
	sb.WriteString("└" + strings.Repeat("─", b.Dx()) + "┘\n")
	return sb.String()
}

// quadrant is the block character for a 2×2 cell: bit 0 top left, 1 top
// right, 2 bottom left, 3 bottom right.
var quadrant = [16]string{" ", "▘", "▝", "▀", "▖", "▌", "▞", "▛", "▗", "▚", "▐", "▜", "▄", "▙", "▟", "█"}

// Quadrants returns img in quadrant blocks, 2×2 pixels a character, framed.
func Quadrants(img *image1bit.VerticalLSB) string {
	b := img.Bounds()
	w := (b.Dx() + 1) / 2
	bit := func(x, y int) int {
		if x < b.Max.X && y < b.Max.Y && bool(img.BitAt(x, y)) {
			return 1
		}
		return 0
	}
	var sb strings.Builder
	sb.Grow((w + 3) * 3 * (b.Dy()/2 + 2))
	sb.WriteString("┌" + strings.Repeat("─", w) + "┐\n")
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		sb.WriteString("│")
		for x := b.Min.X; x < b.Max.X; x += 2 {
			sb.WriteString(quadrant[bit(x, y)|bit(x+1, y)<<1|bit(x, y+1)<<2|bit(x+1, y+1)<<3])
		}
		sb.WriteString("│\n")
	}
	sb.WriteString("└" + strings.Repeat("─", w) + "┘\n")
	return sb.String()
}

// braille is the first braille pattern (no dots); a dot's bit is added.
const braille = 0x2800

// brailleDot is the bit of the dot at (x, y) of a 2×4 cell.
var brailleDot = [4][2]rune{{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}}

// Braille returns img in braille dots, 2×4 pixels a character, framed; a
// cell without dots is a space.
func Braille(img *image1bit.VerticalLSB) string {
	b := img.Bounds()
	w := (b.Dx() + 1) / 2
	var sb strings.Builder
	sb.Grow((w + 3) * 3 * (b.Dy()/4 + 3))
	sb.WriteString("┌" + strings.Repeat("─", w) + "┐\n")
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		sb.WriteString("│")
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r := rune(braille)
			for dy := range 4 {
				for dx := range 2 {
					if x+dx < b.Max.X && y+dy < b.Max.Y && bool(img.BitAt(x+dx, y+dy)) {
						r |= brailleDot[dy][dx]
					}
				}
			}
			if r == braille {
				r = ' ' // some fonts draw the empty pattern as dots or a box
			}
			sb.WriteRune(r)
		}
		sb.WriteString("│\n")
	}
	sb.WriteString("└" + strings.Repeat("─", w) + "┘\n")
	return sb.String()
}

// Frame is what Show writes for s drawn as img with DefaultOpts (InPlace as
// given): the blocks and the words.
func Frame(img *image1bit.VerticalLSB, s display.Screen, inPlace bool) string {
	o := DefaultOpts
	o.InPlace = inPlace
	return o.frame(img, s)
}

// Size is the terminal area a frame of o takes: columns, and lines with the
// words and the footer (footer lines wider than cols count as wrapped).
func (o Opts) Size(cols int) (w, lines int) {
	switch {
	case o.Braille:
		w, lines = (o.Width+1)/2+2, (o.Height+3)/4+2
	case o.Quadrants:
		w, lines = (o.Width+1)/2+2, (o.Height+1)/2+2
	default:
		w, lines = o.Width+2, (o.Height+1)/2+2
	}
	lines++ // the words
	if o.Footer != "" {
		for _, l := range strings.Split(strings.TrimSuffix(o.Footer, "\n"), "\n") {
			n := utf8.RuneCountInString(l)
			lines += max(1, (n+max(cols, 1)-1)/max(cols, 1))
		}
	}
	return w, lines
}

// Fit returns o with the most detailed drawing whose frame, words and footer
// fit a terminal of cols × rows (a line left for the cursor): half blocks,
// else quadrants, else braille (also when nothing fits).
func Fit(o Opts, cols, rows int) Opts {
	for _, try := range []struct{ quadrants, braille bool }{{false, false}, {true, false}, {false, true}} {
		o.Quadrants, o.Braille = try.quadrants, try.braille
		if w, lines := o.Size(cols); w <= cols && lines < rows {
			return o
		}
	}
	return o
}

func (o Opts) frame(img *image1bit.VerticalLSB, s display.Screen) string {
	var sb strings.Builder
	switch {
	case o.Braille:
		sb.WriteString(Braille(img))
	case o.Quadrants:
		sb.WriteString(Quadrants(img))
	default:
		sb.WriteString(Blocks(img))
	}
	fmt.Fprintf(&sb, " [%s] %s\n", s.Kind, display.Plain(s))
	if o.Footer != "" {
		sb.WriteString(o.Footer)
		if !strings.HasSuffix(o.Footer, "\n") {
			sb.WriteByte('\n')
		}
	}
	if !o.InPlace {
		return sb.String()
	}
	// Over the previous frame: from the top, each line cleared to its end
	// (the last frame's may have been longer), then the rest of the screen.
	return "\x1b[H" + strings.ReplaceAll(sb.String(), "\n", "\x1b[K\n") + "\x1b[J"
}

var _ display.Display = (*Display)(nil)
