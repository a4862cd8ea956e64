package flagargs

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		db   string
	}{
		{[]string{"a.json", "-db", "x"}, []string{"a.json"}, "x"},
		{[]string{"-db", "x", "a.json"}, []string{"a.json"}, "x"},
		{[]string{"a", "-db", "x", "b"}, []string{"a", "b"}, "x"},
		{nil, nil, ""},
		{[]string{"-db", "x", "--", "-notaflag"}, []string{"-notaflag"}, "x"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		db := fs.String("db", "", "")
		pos, err := Parse(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *db != tc.db {
			t.Errorf("%q: %q, -db %q, %v; want %q, %q", tc.args, pos, *db, err, tc.pos, tc.db)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Parse(fs, []string{"a", "-bogus"}); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("an unknown flag after an argument: %v", err)
	}
	if _, err := Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
