package oled

import (
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/spi/spireg"
	"periph.io/x/host/v3"
)

// HWConfig names the host's bus and lines for OpenHardware.
type HWConfig struct {
	// Bus is "i2c" (the default) or "spi".
	Bus string
	// I2CBus is the periph name of the I²C bus ("" for the first, "1" for
	// /dev/i2c-1); I2CAddr is 0x3C (default) or 0x3D.
	I2CBus  string
	I2CAddr uint16
	// SPIPort is the periph name of the SPI port ("" for the first, "SPI0.0");
	// DC is the data/command GPIO ("GPIO25").
	SPIPort string
	DC      string
	// Reset is the panel's RES GPIO, if wired: pulsed low once at open.
	Reset string
	Opts  Opts
}

// OpenHardware initialises periph's host drivers, opens the configured bus
// and returns the display on it; Halt closes the bus. It is the only code
// here that touches the host.
func OpenHardware(cfg HWConfig) (*Display, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("oled: host: %w", err)
	}
	if cfg.Reset != "" {
		rst := gpioreg.ByName(cfg.Reset)
		if rst == nil {
			return nil, fmt.Errorf("oled: reset line %q not found", cfg.Reset)
		}
		// The datasheet asks for RES low at least 3 µs after VDD is stable.
		if err := rst.Out(gpio.Low); err != nil {
			return nil, fmt.Errorf("oled: reset: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
		if err := rst.Out(gpio.High); err != nil {
			return nil, fmt.Errorf("oled: reset: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	switch cfg.Bus {
	case "", "i2c":
		bus, err := i2creg.Open(cfg.I2CBus)
		if err != nil {
			return nil, fmt.Errorf("oled: i2c %q: %w", cfg.I2CBus, err)
		}
		d, err := NewI2C(bus, cfg.I2CAddr, &cfg.Opts)
		if err != nil {
			return nil, errors.Join(err, bus.Close())
		}
		d.closer = bus
		return d, nil
	case "spi":
		dc := gpioreg.ByName(cfg.DC)
		if dc == nil {
			return nil, fmt.Errorf("oled: D/C line %q not found", cfg.DC)
		}
		port, err := spireg.Open(cfg.SPIPort)
		if err != nil {
			return nil, fmt.Errorf("oled: spi %q: %w", cfg.SPIPort, err)
		}
		d, err := NewSPI(port, dc, &cfg.Opts)
		if err != nil {
			return nil, errors.Join(err, port.Close())
		}
		d.closer = port
		return d, nil
	}
	return nil, fmt.Errorf("oled: bus %q: want i2c or spi", cfg.Bus)
}
