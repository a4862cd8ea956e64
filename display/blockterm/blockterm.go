// Package blockterm shows the kiosk's screens on a terminal as the OLED would:
// the rendered 1-bit image in Unicode half blocks (▀ ▄ █), two pixel rows a
// character, so 128×64 becomes 128×32 characters, with the screen's words on
// a line underneath for logs and screen readers.
package blockterm

import (
	"fmt"
	"io"
	"strings"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/internal/mailbox"
	"github.com/uitpas/tap-kiosk/display/render"
)

// Opts configures the terminal output.
type Opts struct {
	Width, Height int // of the emulated panel; 128×64
	// InPlace redraws at the top of the terminal (ANSI clear) instead of
	// scrolling: for a terminal of its own, not for one shared with logs.
	InPlace bool
	// Quadrants draws 2×2 pixels a character (▘▝▖▗…), so 128×64 fits an
	// 80-column terminal as 64×32 characters; pixels look twice as tall.
	Quadrants bool
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
	io.WriteString(d.w, frame(d.img, s, d.o.InPlace, d.o.Quadrants))
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

// Frame is what Show writes for s drawn as img: the blocks and the words.
func Frame(img *image1bit.VerticalLSB, s display.Screen, inPlace bool) string {
	return frame(img, s, inPlace, false)
}

func frame(img *image1bit.VerticalLSB, s display.Screen, inPlace, quadrants bool) string {
	var sb strings.Builder
	if inPlace {
		sb.WriteString("\x1b[H\x1b[2J")
	}
	if quadrants {
		sb.WriteString(Quadrants(img))
	} else {
		sb.WriteString(Blocks(img))
	}
	fmt.Fprintf(&sb, " [%s] %s\n", s.Kind, display.Plain(s))
	return sb.String()
}

var _ display.Display = (*Display)(nil)
