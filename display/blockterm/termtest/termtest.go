// Package termtest is a small terminal screen for tests: it interprets what a
// program writes to a terminal — text, newlines, the wrap at the right edge,
// and the ANSI sequences blockterm and most programs use for drawing (cursor
// home and moves, erase in line and in display) — on a grid of a fixed size,
// and counts the lines that scrolled off the top. It shows what a user of an
// 80×24 terminal would see.
package termtest

import (
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Screen is a terminal of a fixed size; it is an io.Writer, safe for
// concurrent use.
type Screen struct {
	mu         sync.Mutex
	cols, rows int
	grid       [][]rune
	wrapped    []bool // row continues on the next (auto-wrap)
	x, y       int
	pendWrap   bool // a rune was written in the last column
	scrolled   int
	pending    []byte // an incomplete rune or escape sequence
	unknownSeq []string
}

// New returns an empty screen of cols × rows, the cursor at the top left.
func New(cols, rows int) *Screen {
	s := &Screen{cols: cols, rows: rows}
	s.grid = make([][]rune, rows)
	s.wrapped = make([]bool, rows)
	for i := range s.grid {
		s.grid[i] = blank(cols)
	}
	return s
}

func blank(n int) []rune {
	r := make([]rune, n)
	for i := range r {
		r[i] = ' '
	}
	return r
}

// Write interprets p. The terminal translates "\n" to CR LF, as a tty does.
func (s *Screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := append(s.pending, p...)
	s.pending = nil
	for len(b) > 0 {
		switch c := b[0]; {
		case c == 0x1b:
			n, ok := s.escape(b)
			if !ok {
				s.pending = append([]byte(nil), b...)
				return len(p), nil
			}
			b = b[n:]
		case c == '\n':
			s.x, s.pendWrap = 0, false
			s.lineFeed()
			b = b[1:]
		case c == '\r':
			s.x, s.pendWrap = 0, false
			b = b[1:]
		case c < 0x20:
			b = b[1:]
		default:
			if !utf8.FullRune(b) {
				s.pending = append([]byte(nil), b...)
				return len(p), nil
			}
			r, n := utf8.DecodeRune(b)
			s.put(r)
			b = b[n:]
		}
	}
	return len(p), nil
}

func (s *Screen) put(r rune) {
	if s.pendWrap {
		s.wrapped[s.y] = true
		s.x, s.pendWrap = 0, false
		s.lineFeed()
	}
	s.grid[s.y][s.x] = r
	if s.x == s.cols-1 {
		s.pendWrap = true
	} else {
		s.x++
	}
}

func (s *Screen) lineFeed() {
	if s.y < s.rows-1 {
		s.y++
		return
	}
	copy(s.grid, s.grid[1:])
	copy(s.wrapped, s.wrapped[1:])
	s.grid[s.rows-1], s.wrapped[s.rows-1] = blank(s.cols), false
	s.scrolled++
}

// escape interprets the CSI sequence at the start of b and says how long it
// was; ok is false when b ends inside it.
func (s *Screen) escape(b []byte) (n int, ok bool) {
	if len(b) < 2 {
		return 0, false
	}
	if b[1] != '[' {
		return 2, true // ESC x: not drawn
	}
	i := 2
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == ';' || b[i] == '?') {
		i++
	}
	if i == len(b) {
		return 0, false
	}
	args, final := string(b[2:i]), b[i]
	num := func(def int) int {
		first, _, _ := strings.Cut(args, ";")
		if v, err := strconv.Atoi(first); err == nil && v > 0 {
			return v
		}
		return def
	}
	s.pendWrap = false
	switch final {
	case 'H', 'f':
		row, col := 1, 1
		if r, c, found := strings.Cut(args, ";"); found || args != "" {
			if v, err := strconv.Atoi(r); err == nil && v > 0 {
				row = v
			}
			if v, err := strconv.Atoi(c); err == nil && v > 0 {
				col = v
			}
		}
		s.y, s.x = min(row, s.rows)-1, min(col, s.cols)-1
	case 'A':
		s.y = max(0, s.y-num(1))
	case 'B':
		s.y = min(s.rows-1, s.y+num(1))
	case 'K':
		switch args {
		case "", "0":
			copy(s.grid[s.y][s.x:], blank(s.cols-s.x))
			s.wrapped[s.y] = false
		case "2":
			s.grid[s.y], s.wrapped[s.y] = blank(s.cols), false
		}
	case 'J':
		switch args {
		case "", "0":
			copy(s.grid[s.y][s.x:], blank(s.cols-s.x))
			s.wrapped[s.y] = false
			for r := s.y + 1; r < s.rows; r++ {
				s.grid[r], s.wrapped[r] = blank(s.cols), false
			}
		case "2", "3":
			for r := range s.rows {
				s.grid[r], s.wrapped[r] = blank(s.cols), false
			}
		}
	default:
		s.unknownSeq = append(s.unknownSeq, string(b[:i+1]))
	}
	return i + 1, true
}

// Rows returns the screen's rows, trailing blanks trimmed.
func (s *Screen) Rows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, s.rows)
	for i, r := range s.grid {
		out[i] = strings.TrimRight(string(r), " ")
	}
	return out
}

// Text returns the screen as lines: rows joined by "\n", except that a row
// the terminal wrapped continues on the next, as a user copying it gets it.
func (s *Screen) Text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sb strings.Builder
	for i, r := range s.grid {
		if s.wrapped[i] {
			sb.WriteString(string(r))
			continue
		}
		sb.WriteString(strings.TrimRight(string(r), " "))
		sb.WriteByte('\n')
	}
	return sb.String()
}

// Contains reports whether sub is on the screen (within one line of Text).
func (s *Screen) Contains(sub string) bool { return strings.Contains(s.Text(), sub) }

// Scrolled is how many lines went off the top of the screen so far.
func (s *Screen) Scrolled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scrolled
}

// Cursor is the cursor's row and column, from 0.
func (s *Screen) Cursor() (row, col int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.y, s.x
}

// Unknown lists the escape sequences the screen did not interpret.
func (s *Screen) Unknown() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unknownSeq...)
}
