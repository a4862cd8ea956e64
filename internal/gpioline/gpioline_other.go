//go:build !linux

package gpioline

import "errors"

// Find needs Linux's GPIO character devices.
func (s Spec) Find() (string, int, error) {
	return "", 0, errors.New("gpioline: GPIO lines need Linux")
}
