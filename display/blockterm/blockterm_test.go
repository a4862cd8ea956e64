package blockterm

import (
	"bytes"
	"image"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
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
