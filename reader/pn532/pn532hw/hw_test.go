package pn532hw

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/uitpas/tap-kiosk/internal/gpioline"

	"github.com/uitpas/tap-kiosk/reader/pn532"
	"periph.io/x/conn/v3/physic"
)

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

// fakeFinder records which lookup resolve used.
type fakeFinder struct{ calls []string }

func (f *fakeFinder) FindLine(name string) (string, int, error) {
	f.calls = append(f.calls, "any:"+name)
	if name == "GPIO25" {
		return "gpiochip4", 25, nil // a Pi 5 whose header is not gpiochip0
	}
	return "", 0, errors.New("not found")
}

func (f *fakeFinder) FindLineOn(chip, name string) (int, error) {
	f.calls = append(f.calls, chip+":"+name)
	if chip == "gpiochip0" && name == "GPIO24" {
		return 24, nil
	}
	return 0, errors.New("not found")
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		in     string
		chip   string
		offset int
		calls  string
		bad    bool
	}{
		{in: "GPIO25", chip: "gpiochip4", offset: 25, calls: "any:GPIO25"}, // every chip searched
		{in: "gpiochip0:GPIO24", chip: "gpiochip0", offset: 24, calls: "gpiochip0:GPIO24"},
		{in: "gpiochip0:25", chip: "gpiochip0", offset: 25, calls: ""},
		{in: "GPIO99", calls: "any:GPIO99", bad: true},
		{in: "gpiochip1:GPIO24", calls: "gpiochip1:GPIO24", bad: true},
		{in: "25", bad: true}, // an offset needs its chip
		{in: "gpiochip0:", bad: true},
		{in: ":25", bad: true},
		{in: "gpiochip0:-1", bad: true},
		{in: "", bad: true},
	} {
		f := &fakeFinder{}
		chip, off, err := resolve(c.in, f)
		if got := strings.Join(f.calls, ","); got != c.calls {
			t.Errorf("resolve(%q) looked up %q, want %q", c.in, got, c.calls)
		}
		if c.bad {
			if err == nil || !strings.HasPrefix(err.Error(), "pn532hw: ") {
				t.Errorf("resolve(%q) = %v, want a pn532hw error", c.in, err)
			}
			continue
		}
		if err != nil || chip != c.chip || off != c.offset {
			t.Errorf("resolve(%q) = %s:%d, %v; want %s:%d", c.in, chip, off, err, c.chip, c.offset)
		}
	}
}

// TestDefaultLinesAreNames: the defaults, and the packaged kioskd.toml's
// reader lines, are line names searched on every chip, never chip:offset
// (which binds a wrong line silently where gpiochip0 is not the header).
func TestDefaultLinesAreNames(t *testing.T) {
	for _, l := range []string{DefaultIRQ, DefaultReset} {
		if ls, err := gpioline.Parse(l); err != nil || ls.Chip != "" || ls.Name == "" {
			t.Errorf("default line %q = %+v, %v; want a bare line name", l, ls, err)
		}
	}
	var cfg struct {
		Reader struct {
			IRQ   string `toml:"irq"`
			Reset string `toml:"reset"`
		} `toml:"reader"`
		Display struct {
			Buzzer string `toml:"buzzer"`
			LED    string `toml:"led"`
		} `toml:"display"`
	}
	if _, err := toml.DecodeFile(filepath.Join("..", "..", "..", "systemd", "kioskd.toml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Reader.IRQ != DefaultIRQ || cfg.Reader.Reset != DefaultReset {
		t.Errorf("kioskd.toml reader.irq, reader.reset = %q, %q; want %q, %q", cfg.Reader.IRQ, cfg.Reader.Reset, DefaultIRQ, DefaultReset)
	}
	for key, l := range map[string]string{"display.buzzer": cfg.Display.Buzzer, "display.led": cfg.Display.LED} {
		if ls, err := gpioline.Parse(l); err != nil || ls.Chip != "" {
			t.Errorf("kioskd.toml %s = %q: want a bare line name", key, l)
		}
	}
}
