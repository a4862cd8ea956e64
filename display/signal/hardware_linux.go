package signal

import (
	"fmt"

	"github.com/warthog618/go-gpiocdev"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/gpioline"
)

// OpenHardware requests the buzzer and LED lines as outputs, low. Each is
// given as the configuration writes it ("GPIO18", searched on every chip, or
// "gpiochip0:18"; see gpioline); an empty one is not wired.
func OpenHardware(buzzerLine, ledLine string) (*Indicator, error) {
	var lines []*gpiocdev.Line
	closeAll := func() {
		for _, l := range lines {
			l.Close()
		}
	}
	request := func(what, spec string) (LineSetter, error) {
		if spec == "" {
			return nil, nil
		}
		s, err := gpioline.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("signal: %s: %w", what, err)
		}
		chip, off, err := s.Find()
		if err != nil {
			return nil, fmt.Errorf("signal: %s: %w", what, err)
		}
		l, err := gpiocdev.RequestLine(chip, off, gpiocdev.AsOutput(0), gpiocdev.WithConsumer("kioskd"))
		if err != nil {
			return nil, fmt.Errorf("signal: %s line %s (%s:%d): %w", what, spec, chip, off, err)
		}
		lines = append(lines, l)
		return l, nil
	}
	buzzer, err := request("buzzer", buzzerLine)
	if err != nil {
		return nil, err
	}
	led, err := request("led", ledLine)
	if err != nil {
		closeAll()
		return nil, err
	}
	ind := New(buzzer, led, clock.Real{})
	for _, l := range lines {
		ind.closers = append(ind.closers, l.Close)
	}
	return ind, nil
}
