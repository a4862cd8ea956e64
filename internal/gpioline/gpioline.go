// Package gpioline parses the GPIO line names of kioskd's configuration, so
// that the configuration check, the reader and the buzzer/LED agree on one
// form:
//
//	GPIO25            a line name, searched on every chip (works on every Pi:
//	                  on a Pi 5 the header is not always gpiochip0)
//	gpiochip0:GPIO25  a name on one chip
//	gpiochip0:25      an offset on one chip
package gpioline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Spec is a parsed line.
type Spec struct {
	Chip   string // "" → search every chip for Name
	Offset int    // when Name is ""
	Name   string
}

func (s Spec) String() string {
	switch {
	case s.Name == "":
		return s.Chip + ":" + strconv.Itoa(s.Offset)
	case s.Chip == "":
		return s.Name
	}
	return s.Chip + ":" + s.Name
}

// ErrSyntax is wrapped by every error of Parse.
var ErrSyntax = errors.New("want a line name such as GPIO25, or chip:offset such as gpiochip0:25")

// Parse reads a line as the configuration writes it.
func Parse(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("gpioline: %q: %s: %w", s, why, ErrSyntax)
	}
	if s == "" {
		return bad("empty")
	}
	chip, line, found := strings.Cut(s, ":")
	if !found {
		chip, line = "", s
	}
	if found && (chip == "" || line == "") {
		return bad("empty chip or line")
	}
	if found && !validName(chip) {
		return bad("bad chip name")
	}
	if n, err := strconv.Atoi(line); err == nil {
		switch {
		case n < 0 || n > 511:
			return bad("offset out of range")
		case chip == "":
			return bad(fmt.Sprintf("an offset needs its chip (gpiochip0:%d), or use the line's name", n))
		}
		return Spec{Chip: chip, Offset: n}, nil
	}
	if !validName(line) {
		return bad("bad line name")
	}
	return Spec{Chip: chip, Name: line}, nil
}

// validName accepts what the kernel's device trees name chips and lines.
func validName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
