package kiosk

import "fmt"

// openHardwareReader opens the PN532 drivers.
func (k *Kiosk) openHardwareReader() error {
	return fmt.Errorf("kiosk: reader.driver %q is not available in this build", k.cfg.Reader.Driver)
}

// openHardwareDisplay opens the SSD1306 and PNG outputs.
func (k *Kiosk) openHardwareDisplay() error {
	return fmt.Errorf("kiosk: display.driver %q is not available in this build", k.cfg.Display.Driver)
}
