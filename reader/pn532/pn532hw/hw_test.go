package pn532hw

import (
	"testing"

	"github.com/uitpas/tap-kiosk/reader/pn532"
	"periph.io/x/conn/v3/physic"
)

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want lineSpec
		bad  bool
	}{
		{in: "gpiochip0:25", want: lineSpec{chip: "gpiochip0", offset: 25}},
		{in: "gpiochip4:GPIO25", want: lineSpec{chip: "gpiochip4", name: "GPIO25"}},
		{in: " GPIO24 ", want: lineSpec{name: "GPIO24"}},
		{in: "/dev/gpiochip0:7", want: lineSpec{chip: "/dev/gpiochip0", offset: 7}},
		{in: "", bad: true},
		{in: "25", bad: true},
		{in: "gpiochip0:", bad: true},
		{in: ":25", bad: true},
		{in: "gpiochip0:-1", bad: true},
	} {
		got, err := parseLine(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseLine(%q) = %+v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseLine(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestConfigOpts(t *testing.T) {
	if s := (Config{}).opts().Speed; s != physic.MegaHertz {
		t.Errorf("default speed %v", s)
	}
	if s := (Config{SpeedHz: 500_000}).opts().Speed; s != 500*physic.KiloHertz {
		t.Errorf("speed %v", s)
	}
	if s := (Config{Opts: pn532.Opts{Speed: 2 * physic.MegaHertz}}).opts().Speed; s != 2*physic.MegaHertz {
		t.Errorf("speed from opts %v", s)
	}
}
