//go:build linux

package pn532hw

import (
	"testing"

	"github.com/warthog618/go-gpiocdev"
)

// TestIRQPullUp: P70_IRQ is requested with the internal pull-up (GPIO25
// defaults to pull-down, so an unwired line would read "ready"), as an
// input with falling-edge events.
func TestIRQPullUp(t *testing.T) {
	var pullUp, falling, input bool
	for _, o := range irqOptions(func(gpiocdev.LineEvent) {}) {
		switch o {
		case gpiocdev.LineReqOption(gpiocdev.WithPullUp):
			pullUp = true
		case gpiocdev.LineReqOption(gpiocdev.WithPullDown), gpiocdev.LineReqOption(gpiocdev.WithBiasDisabled):
			t.Errorf("IRQ line requested with bias %v", o)
		case gpiocdev.LineReqOption(gpiocdev.WithFallingEdge):
			falling = true
		case gpiocdev.LineReqOption(gpiocdev.AsInput):
			input = true
		}
	}
	if !pullUp || !falling || !input {
		t.Errorf("IRQ options: pull-up %v, falling edge %v, input %v; want all", pullUp, falling, input)
	}
}
