package pn532

import (
	"time"

	"periph.io/x/conn/v3/physic"
)

// BitOrder says how bytes reach the wire least significant bit first, as the
// PN532 wants them.
type BitOrder uint8

// Bit orders.
const (
	// BitOrderAuto is the order that works on every SPI port: plain mode 0,
	// bits reversed in software (math/bits.Reverse8, a table lookup per
	// byte), as every working Raspberry Pi driver does. It does not ask for
	// LSB-first first: the Pi's controllers (spi-bcm2835, the Pi 5's RP1)
	// refuse it, and a periph port is connected only once — sysfs-spi marks
	// itself connected before the mode ioctl fails, so a fallback Connect on
	// the same port always fails.
	BitOrderAuto BitOrder = iota
	// BitOrderHardware requires the port to shift LSB-first (NewSPI fails
	// when it refuses). For controllers known to support it.
	BitOrderHardware
	// BitOrderSoftware always reverses bits in software over plain mode 0
	// (what BitOrderAuto does).
	BitOrderSoftware
)

func (b BitOrder) String() string {
	switch b {
	case BitOrderAuto:
		return "auto"
	case BitOrderHardware:
		return "hardware"
	case BitOrderSoftware:
		return "software"
	}
	return "invalid"
}

// Opts configures a Dev. A zero field takes its DefaultOpts value.
type Opts struct {
	// Speed is the SPI clock. The chip allows 5 MHz; long wires and cheap
	// modules fail above ~1 MHz.
	Speed physic.Frequency
	// BitOrder picks hardware or software LSB-first; the default reverses
	// in software.
	BitOrder BitOrder

	// PollInterval is the pause between poll cycles, with the RF field off.
	// It bounds tap latency from above (one interval plus one cycle).
	PollInterval time.Duration
	// MaxRetries is the passive activation retries of one
	// InListPassiveTarget (RFConfiguration item 5); it must be finite for a
	// poller (FF would block the chip until a card comes), so 255 is
	// clamped to 254. Zero takes the default; use -1 for a single try.
	MaxRetries int

	// ACKTimeout is how long the chip has to acknowledge a command before
	// it is sent again. The manual expects the ACK within ~15 ms, but a
	// chip just out of power-on or reset can take longer, and a resend
	// supersedes the command it had nearly acknowledged (so a chip slower
	// than the timeout never answers at all); other drivers wait 100 ms to
	// 1 s. With an IRQ line it is also how
	// often a line that stays high is checked against the status byte.
	ACKTimeout time.Duration
	// ReplyTimeout is how long the chip has to answer after its ACK.
	ReplyTimeout time.Duration
	// Resends is how many times one command is sent again after a missing
	// ACK, and how many times a bad reply is asked for again (NACK).
	Resends int
	// StatusPoll is the status-byte polling period when no IRQ line is
	// wired (and before SAMConfiguration turned the IRQ pin on).
	StatusPoll time.Duration
	// WakeHold is how long chip select is held low to wake the chip (≥ 2 ms).
	WakeHold time.Duration

	// AbsentCycles is how many poll cycles in a row must miss a card before
	// it counts as gone: a card resting on the reader is one tap, and it
	// taps again only after leaving the field for this many full cycles.
	AbsentCycles int

	// Backoff is the first pause between re-initialisations of a silent
	// chip; it doubles up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// ResetAfter is how many failed re-initialisations trigger a hardware
	// reset through RSTPD_N (then again every ResetAfter failures).
	ResetAfter int
	// ResetPulse is how long RSTPD_N is held low; ResetSettle how long the
	// chip is given to boot afterwards.
	ResetPulse  time.Duration
	ResetSettle time.Duration

	// LogEvery is the least time between two log lines about the same
	// recurring error, so a failing reader cannot flood the journal.
	LogEvery time.Duration

	// ClosePort makes Halt close the SPI port when it is an io.Closer (for
	// callers that opened the port only for this Dev).
	ClosePort bool
}

// DefaultOpts are the production settings.
var DefaultOpts = Opts{
	Speed:        physic.MegaHertz,
	BitOrder:     BitOrderAuto,
	PollInterval: 100 * time.Millisecond,
	MaxRetries:   1,
	ACKTimeout:   100 * time.Millisecond,
	ReplyTimeout: time.Second,
	Resends:      3,
	StatusPoll:   2 * time.Millisecond,
	WakeHold:     4 * time.Millisecond,
	AbsentCycles: 1,
	Backoff:      500 * time.Millisecond,
	MaxBackoff:   30 * time.Second,
	ResetAfter:   2,
	ResetPulse:   20 * time.Millisecond,
	ResetSettle:  50 * time.Millisecond,
	LogEvery:     time.Minute,
}

// withDefaults fills zero (and nonsensical negative) fields from DefaultOpts.
func (o Opts) withDefaults() Opts {
	d := DefaultOpts
	orDefault(&o.Speed, d.Speed)
	orDefault(&o.PollInterval, d.PollInterval)
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = d.MaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	case o.MaxRetries > 0xFE:
		o.MaxRetries = 0xFE
	}
	orDefault(&o.ACKTimeout, d.ACKTimeout)
	orDefault(&o.ReplyTimeout, d.ReplyTimeout)
	orDefault(&o.Resends, d.Resends)
	orDefault(&o.StatusPoll, d.StatusPoll)
	orDefault(&o.WakeHold, d.WakeHold)
	orDefault(&o.AbsentCycles, d.AbsentCycles)
	orDefault(&o.Backoff, d.Backoff)
	orDefault(&o.MaxBackoff, d.MaxBackoff)
	o.MaxBackoff = max(o.MaxBackoff, o.Backoff)
	orDefault(&o.ResetAfter, d.ResetAfter)
	orDefault(&o.ResetPulse, d.ResetPulse)
	orDefault(&o.ResetSettle, d.ResetSettle)
	orDefault(&o.LogEvery, d.LogEvery)
	return o
}

// orDefault sets *v to def when it is zero or negative.
func orDefault[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
