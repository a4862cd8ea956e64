//go:build !linux

package signal

import "errors"

// OpenHardware needs the Linux GPIO character device; elsewhere (a
// developer's laptop) the buzzer and LED are not wired.
func OpenHardware(buzzerLine, ledLine string) (*Indicator, error) {
	return nil, errors.New("signal: GPIO lines need Linux")
}
