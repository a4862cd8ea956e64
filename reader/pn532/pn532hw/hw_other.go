//go:build !linux

package pn532hw

// OpenParts is Linux-only (spidev and the GPIO character device).
func OpenParts(cfg Config) (Parts, error) { return Parts{}, ErrUnsupported }
