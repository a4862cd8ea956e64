package termtest

import (
	"strings"
	"testing"
)

func TestScreen(t *testing.T) {
	s := New(5, 3)
	s.Write([]byte("abcdefg\n")) // wraps after e
	if got := s.Rows(); got[0] != "abcde" || got[1] != "fg" || got[2] != "" {
		t.Fatalf("rows %q", got)
	}
	if !s.Contains("abcdefg") {
		t.Fatalf("a wrapped line is not one line of Text: %q", s.Text())
	}
	s.Write([]byte("xy\nz")) // xy on the last row, then a scroll
	if s.Scrolled() != 1 || strings.Join(s.Rows(), "|") != "fg|xy|z" {
		t.Fatalf("scrolled %d, rows %q", s.Scrolled(), s.Rows())
	}
	// Exactly five: the cursor waits in the last column; "\n" moves down once.
	s = New(5, 3)
	s.Write([]byte("abcde\nf"))
	if got := s.Rows(); got[0] != "abcde" || got[1] != "f" {
		t.Fatalf("rows %q", got)
	}
	// Home, erase to the end of the line, erase below; split across writes.
	s.Write([]byte("\x1b[H12\x1b"))
	s.Write([]byte("[K\n\x1b[J"))
	if got := strings.Join(s.Rows(), "|"); got != "12||" || s.Scrolled() != 0 {
		t.Fatalf("rows %q scrolled %d", got, s.Scrolled())
	}
	s.Write([]byte("é\x1b[2A\x1b[7m"))
	if r, c := s.Cursor(); r != 0 || c != 1 || s.Rows()[1] != "é" {
		t.Fatalf("cursor %d,%d rows %q", r, c, s.Rows())
	}
	if u := s.Unknown(); len(u) != 1 || u[0] != "\x1b[7m" {
		t.Fatalf("unknown %q", u)
	}
}
