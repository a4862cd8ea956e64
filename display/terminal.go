package display

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// Terminal draws screens as a framed text box on a terminal (the demo's
// display). It writes synchronously, which is fine for a terminal.
type Terminal struct {
	mu sync.Mutex
	w  io.Writer
}

// NewTerminal returns a terminal display writing to w.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

const termWidth = 34

// Show draws s.
func (t *Terminal) Show(s Screen) {
	words := Words(s)
	var b strings.Builder
	line := func(l string) {
		for _, part := range wrap(l, termWidth) {
			fmt.Fprintf(&b, "│ %s%s │\n", part, strings.Repeat(" ", termWidth-utf8.RuneCountInString(part)))
		}
	}
	b.WriteString("┌" + strings.Repeat("─", termWidth+2) + "┐\n")
	line(strings.ToUpper(words.Title))
	for _, l := range words.Lines {
		line(l)
	}
	if s.Kind == Spaarcode && s.Code != "" {
		line("[" + s.Code + "]")
	}
	b.WriteString("└" + strings.Repeat("─", termWidth+2) + "┘\n")
	t.mu.Lock()
	defer t.mu.Unlock()
	io.WriteString(t.w, b.String())
}

// Halt does nothing: a terminal needs no release.
func (t *Terminal) Halt() error { return nil }

func (t *Terminal) String() string { return "terminal" }

// wrap breaks s into lines of at most width runes, at spaces where it can.
func wrap(s string, width int) []string {
	var out []string
	for utf8.RuneCountInString(s) > width {
		r := []rune(s)
		cut := width
		for i := width; i > width/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimSpace(string(r[:cut])))
		s = strings.TrimSpace(string(r[cut:]))
	}
	return append(out, s)
}
