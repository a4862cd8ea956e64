package oled_test

import (
	"log"
	"time"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/oled"
)

// A kiosk's panel on /dev/i2c-1 at 0x3C, dimmed from 22:00 to 07:00.
func ExampleOpenHardware() {
	o := oled.DefaultOpts
	o.Night = oled.Night{From: 22 * time.Hour, To: 7 * time.Hour, Contrast: 0x10}
	d, err := oled.OpenHardware(oled.HWConfig{Bus: "i2c", I2CBus: "1", I2CAddr: 0x3C, Opts: o})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Halt()
	d.Show(display.Screen{Kind: display.Idle, EventTitle: "Yoga in ’t park"})
}
