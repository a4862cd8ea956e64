package gpioline

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Spec
	}{
		{"GPIO25", Spec{Name: "GPIO25"}},
		{" gpiochip0:25 ", Spec{Chip: "gpiochip0", Offset: 25}},
		{"gpiochip4:GPIO24", Spec{Chip: "gpiochip4", Name: "GPIO24"}},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if again, err := Parse(got.String()); err != nil || again != got {
			t.Errorf("%q does not round-trip: %+v %v", got.String(), again, err)
		}
	}
	for _, in := range []string{"", "25", ":25", "gpiochip0:", "gpiochip0:-1", "gpiochip0:9999", "GPIO 25", "gpio/chip:1", "a:b:c"} {
		if _, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", in, err)
		}
	}
}
