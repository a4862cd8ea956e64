package signal

import (
	"fmt"
	"strconv"

	"github.com/warthog618/go-gpiocdev"

	"github.com/uitpas/tap-kiosk/clock"
)

// OpenHardware requests the buzzer and LED lines of a GPIO character device
// ("gpiochip0") as outputs, low. A line is given by name ("GPIO18", as the
// device tree calls it) or by offset ("18"); an empty one is not wired.
func OpenHardware(chip, buzzerLine, ledLine string) (*Indicator, error) {
	c, err := gpiocdev.NewChip(chip, gpiocdev.WithConsumer("kioskd"))
	if err != nil {
		return nil, fmt.Errorf("signal: chip %q: %w", chip, err)
	}
	defer c.Close() // requested lines outlive the chip handle
	var lines []*gpiocdev.Line
	request := func(name string) (LineSetter, error) {
		if name == "" {
			return nil, nil
		}
		off, err := strconv.Atoi(name)
		if err != nil {
			if off, err = c.FindLine(name); err != nil {
				return nil, fmt.Errorf("signal: line %q on %s: %w", name, chip, err)
			}
		}
		l, err := c.RequestLine(off, gpiocdev.AsOutput(0))
		if err != nil {
			return nil, fmt.Errorf("signal: request line %q on %s: %w", name, chip, err)
		}
		lines = append(lines, l)
		return l, nil
	}
	closeAll := func() {
		for _, l := range lines {
			l.Close()
		}
	}
	buzzer, err := request(buzzerLine)
	if err != nil {
		return nil, err
	}
	led, err := request(ledLine)
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
