package kiosk

import (
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/render"
)

// screenPages is how the core learns how many pages a screen takes on this
// kiosk's panel: central's long messages are split into pages rather than
// set in a font too small to read. nil without a panel.
func (k *Kiosk) screenPages() func(display.Screen) int {
	d := k.cfg.Display
	if d.Driver == "none" && k.o.Display == nil {
		return nil
	}
	r, err := render.New(&render.Opts{Width: d.Width, Height: d.Height})
	if err != nil {
		return nil // the output itself refused this size at start
	}
	return r.Pages
}

// linked reports whether the forwarder in place has a session that can
// deliver checkins and Results now.
func (k *Kiosk) linked() bool {
	f := k.up.p.Load()
	return f != nil && f.Connected()
}
