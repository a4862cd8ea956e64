package blockterm

import (
	"bytes"
	"fmt"
	"image"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/blockterm/termtest"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

func TestBlocks(t *testing.T) {
	img := image1bit.NewVerticalLSB(image.Rect(0, 0, 4, 4))
	img.SetBit(0, 0, image1bit.On) // top
	img.SetBit(1, 1, image1bit.On) // bottom
	img.SetBit(2, 0, image1bit.On) // both
	img.SetBit(2, 1, image1bit.On)
	got := Blocks(img)
	want := "┌────┐\n│▀▄█ │\n│    │\n└────┘\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestShow(t *testing.T) {
	var buf syncBuf
	d, err := New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Show(display.Screen{Kind: display.Saved, Points: 1, HasTotal: true, Total: 23})
	if err := d.Halt(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 32+2+1 {
		t.Fatalf("%d lines, want 35:\n%s", len(lines), out)
	}
	for _, l := range lines[:34] {
		if n := utf8.RuneCountInString(l); n != 130 {
			t.Fatalf("line of %d runes, want 130: %q", n, l)
		}
	}
	if !strings.Contains(out, "█") || !strings.Contains(lines[34], "+1 punt gespaard") {
		t.Errorf("no picture or no words:\n%s", out)
	}
}

func TestShowDoesNotWait(t *testing.T) {
	block := make(chan struct{})
	d, err := New(writerFunc(func(p []byte) (int, error) { <-block; return len(p), nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for range 50 {
			d.Show(display.Screen{Kind: display.Fault})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Show waited for the writer")
	}
	close(block)
	d.Halt()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestQuadrants(t *testing.T) {
	img := image1bit.NewVerticalLSB(image.Rect(0, 0, 4, 2))
	img.SetBit(0, 0, true) // top left of the first cell
	img.SetBit(3, 0, true) // top right and
	img.SetBit(3, 1, true) // bottom right of the second
	want := "┌──┐\n│▘▐│\n└──┘\n"
	if got := Quadrants(img); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestBraille(t *testing.T) {
	img := image1bit.NewVerticalLSB(image.Rect(0, 0, 6, 4))
	img.SetBit(0, 0, true) // dot 1 of the first cell
	img.SetBit(1, 3, true) // dot 8
	img.SetBit(2, 1, true) // dot 2 of the second; the third has none
	want := "┌───┐\n│\u2881\u2802 │\n└───┘\n"
	if got := Braille(img); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

// tapFooter is like the demo's footer: its tap command is 79 characters,
// which just fit 80 columns; narrower terminals wrap it.
const tapFooter = "Tap from another terminal; again after 3 s it is already saved. Ctrl-C stops.\n" +
	"bin/kioskctl -socket /tmp/kiosk-demo-3471993311/control.sock tap 04A1B2C3D4E5F6\n" +
	"Logs: /tmp/kiosk-demo-3471993311/demo.log\n"

func TestFit(t *testing.T) {
	o := Opts{Width: 128, Height: 64, Footer: tapFooter}
	for _, tc := range []struct {
		cols, rows          int
		quadrants, braille  bool
		wantCols, wantLines int
	}{
		{80, 24, false, true, 66, 18 + 1 + 3},
		{80, 40, true, false, 66, 34 + 1 + 3},
		{140, 45, false, false, 130, 34 + 1 + 3},
		{40, 10, false, true, 66, 18 + 1 + 6}, // nothing fits: the smallest; each footer line wraps
	} {
		f := Fit(o, tc.cols, tc.rows)
		w, lines := f.Size(tc.cols)
		if f.Quadrants != tc.quadrants || f.Braille != tc.braille || w != tc.wantCols || lines != tc.wantLines {
			t.Errorf("%d×%d: quadrants %v braille %v, %d×%d; want %v %v, %d×%d",
				tc.cols, tc.rows, f.Quadrants, f.Braille, w, lines, tc.quadrants, tc.braille, tc.wantCols, tc.wantLines)
		}
	}
}

// countWriter counts the frames written through it.
type countWriter struct {
	w      io.Writer
	mu     sync.Mutex
	writes []string
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, string(p))
	c.mu.Unlock()
	return c.w.Write(p)
}

func (c *countWriter) frames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.writes...)
}

// showAll shows each screen and waits until it is drawn (a Show not yet
// drawn is superseded by the next).
func showAll(t *testing.T, d *Display, w *countWriter, screens []display.Screen) {
	t.Helper()
	for i, s := range screens {
		d.Show(s)
		waitfor.Cond(t, fmt.Sprintf("frame %d drawn", i+1), func() bool { return len(w.frames()) == i+1 })
	}
}

var someScreens = []display.Screen{
	{Kind: display.Idle, EventTitle: "Bib Geel – leesclub"},
	{Kind: display.Saved, Points: 1},
	{Kind: display.Saved, Points: 1, HasTotal: true, Total: 23},
	{Kind: display.Spaarcode, Code: "LGIWNWB"},
	{Kind: display.Idle, EventTitle: "Bib Geel – leesclub"},
}

// TestInPlaceKeepsFooterOnScreen: in an 80×24 terminal the frames, fitted,
// are redrawn over each other — nothing scrolls, so the footer's tap command
// stays on screen — and every frame is written as home, lines each cleared to
// their end, the rest of the screen cleared.
func TestInPlaceKeepsFooterOnScreen(t *testing.T) {
	scr := termtest.New(80, 24)
	w := &countWriter{w: scr}
	o := Fit(Opts{Width: 128, Height: 64, InPlace: true, Footer: tapFooter}, 80, 24)
	d, err := New(w, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Halt()
	showAll(t, d, w, someScreens)
	if n := scr.Scrolled(); n != 0 {
		t.Errorf("the terminal scrolled %d lines:\n%s", n, scr.Text())
	}
	for _, l := range strings.Split(strings.TrimSpace(tapFooter), "\n") {
		if !scr.Contains(l) {
			t.Errorf("footer line %q not on screen:\n%s", l, scr.Text())
		}
	}
	if !scr.Contains("[idle]") || strings.Count(scr.Text(), "┌") != 1 {
		t.Errorf("not one frame of the last screen:\n%s", scr.Text())
	}
	if u := scr.Unknown(); len(u) > 0 {
		t.Errorf("escape sequences a terminal would not know: %q", u)
	}
	for i, f := range w.frames() {
		body, ok := strings.CutPrefix(f, "\x1b[H")
		if !ok || !strings.HasSuffix(body, "\x1b[J") {
			t.Fatalf("frame %d is not home … erase below: %q", i+1, f)
		}
		if strings.Count(body, "\n") != strings.Count(body, "\x1b[K\n") {
			t.Fatalf("frame %d has a line not cleared to its end: %q", i+1, f)
		}
		if !strings.Contains(body, "tap 04A1B2C3D4E5F6\x1b[K\n") {
			t.Fatalf("frame %d without the footer", i+1)
		}
	}
}

// TestScrollingLosesFooter is the other mode, for a terminal shared with
// logs: each frame is appended, and in 80×24 the footer of one frame scrolls
// away with the next (why the demo redraws in place).
func TestScrollingLosesFooter(t *testing.T) {
	scr := termtest.New(80, 24)
	w := &countWriter{w: scr}
	o := Opts{Width: 128, Height: 64, Quadrants: true}
	d, err := New(w, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Halt()
	io.WriteString(scr, tapFooter)
	showAll(t, d, w, someScreens[:2])
	if scr.Scrolled() == 0 || scr.Contains("tap 04A1B2C3D4E5F6") {
		t.Fatalf("scrolled %d, and the tap command is still on screen", scr.Scrolled())
	}
	for _, f := range w.frames() {
		if strings.Contains(f, "\x1b[") {
			t.Fatalf("a scrolling frame with escape sequences: %q", f)
		}
	}
}
