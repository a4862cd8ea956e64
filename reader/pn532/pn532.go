package pn532

import (
	"github.com/uitpas/tap-kiosk/internal/ratelog"

	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader"
	"github.com/uitpas/tap-kiosk/reader/pn532/frame"
	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// IRQ is the chip's P70_IRQ output as seen by the host: an input line, low
// while the chip has a frame for the host. A go-gpiocdev line requested with
// WithFallingEdge (and WithPullUp, so an unwired line reads high) fits once
// its event handler feeds Falling (see pn532hw). The driver checks the line
// against the chip's status byte and stops using one that does not follow.
type IRQ interface {
	// Value reads the line: 0 is low (the chip is ready).
	Value() (int, error)
	// Falling delivers a value after each falling edge. Edges may be
	// coalesced; the driver re-reads Value after every wake-up.
	Falling() <-chan struct{}
	// Close releases the line.
	Close() error
}

// Reset is the chip's RSTPD_N input driven by the host: low holds the chip
// in reset. *gpiocdev.Line satisfies it.
type Reset interface {
	SetValue(int) error
	Close() error
}

// Errors callers may branch on.
var (
	// ErrHalted: Halt was called.
	ErrHalted = errors.New("pn532: halted")
	// ErrBusy: Run is already running.
	ErrBusy = errors.New("pn532: already running")
	// ErrNoACK: the chip did not acknowledge a command, after every resend.
	ErrNoACK = errors.New("pn532: no ack")
	// ErrTimeout: the chip acknowledged but did not answer in time.
	ErrTimeout = errors.New("pn532: reply timeout")
	// ErrBadFrame: replies kept failing their checksums or made no sense.
	ErrBadFrame = errors.New("pn532: bad frame")
	// ErrSyntax: the chip answered with its application error frame.
	ErrSyntax = errors.New("pn532: chip reported a syntax error")
	// ErrNotPN532: GetFirmwareVersion named another chip.
	ErrNotPN532 = errors.New("pn532: not a PN532")
	// ErrBadReply: a well-framed reply whose content does not parse
	// (never taken as a card, never a reason to reset the chip).
	ErrBadReply = errors.New("pn532: malformed reply")
)

// SPI transaction prefixes.
const (
	spiDataWrite  = 0x01
	spiStatusRead = 0x02
	spiDataRead   = 0x03
	spiReady      = 0x01
)

// Read sizes (bytes after the prefix), chosen so one transaction holds the
// whole frame with room for a long preamble. A longer frame is read again
// whole after a NACK.
const (
	ackRead     = 12
	replyRead   = 24
	inListRead  = 64
	maxRead     = 300
	maxStale    = 3 // stale frames dropped while waiting for one ACK or reply
	irqMissesOK = 3 // waits where the IRQ line contradicted the status byte, before giving up on it
)

// RFConfiguration MaxRetries (CfgItem 5) besides the passive activation
// retries, which are Opts.MaxRetries. UM0701 §7.3.1: MxRtyATR is how often
// the chip resends ATR_REQ when ATR_RES is missing or bad, FF forever (the
// power-on default) and 00 once. The manual has passive mode overrule it
// with 02, but with FF a phone presenting itself as an NFC-DEP target can
// hold InListPassiveTarget until the host's reply timeout: set it finite, to
// the 02 passive mode is documented to use. MxRtyPSL keeps its default, 01.
const (
	atrRetries = 0x02
	pslRetries = 0x01
)

// Dev is a PN532 on SPI. It implements reader.Reader and conn.Resource.
// Run, Poll, Init and Halt may be called from different goroutines: the bus
// is used by one at a time.
type Dev struct {
	c    spi.Conn
	port spi.Port
	soft bool // software bit reversal
	irq  IRQ
	rst  Reset
	clk  clock.Clock
	log  *slog.Logger
	opts Opts

	running atomic.Bool
	runT    clock.Timer // Run's own waits (poll interval, backoff)

	mu       sync.Mutex // held for every use of the bus and the fields below
	halted   bool
	busT     clock.Timer
	irqArmed bool // SAMConfiguration turned the IRQ pin on
	irqOff   bool // the IRQ line proved dead; status polling instead
	irqMiss  int
	fw       frame.Firmware
	wake     []byte
	w        [maxRead + 1]byte
	r        [maxRead + 1]byte
	cmd      [16]byte
	uid      [10]byte

	lim *ratelog.Limiter
}

var _ conn.Resource = (*Dev)(nil)
var _ reader.Reader = (*Dev)(nil)

// NewSPI connects to the PN532 on p. irq and rst may be nil: without irq
// the driver polls the status byte; without rst it cannot reset the chip in
// hardware. It does not talk to the chip: Run (or Init) does, so a kiosk
// whose reader is dead at boot still starts and reports the fault.
func NewSPI(p spi.Port, irq IRQ, rst Reset, clk clock.Clock, log *slog.Logger, opts *Opts) (*Dev, error) {
	o := DefaultOpts
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dev{port: p, irq: irq, rst: rst, clk: clk, log: log, opts: o}
	d.lim = ratelog.New(o.LogEvery)
	// One Connect only: periph's ports refuse a second one, and sysfs-spi
	// counts a Connect that failed on the mode (LSB-first refused) as the
	// one, so asking for LSB-first and falling back is impossible.
	var err error
	if o.BitOrder == BitOrderHardware {
		d.c, err = p.Connect(o.Speed, spi.Mode0|spi.LSBFirst, 8)
	} else {
		d.c, err = p.Connect(o.Speed, spi.Mode0, 8)
		d.soft = true
	}
	if err != nil {
		return nil, fmt.Errorf("pn532: connect %s: %w", p, err)
	}
	if rst != nil {
		if err := rst.SetValue(1); err != nil {
			return nil, fmt.Errorf("pn532: release reset: %w", err)
		}
	}
	// Chip select low for WakeHold: a status read followed by dummy bytes,
	// capped at spidev's default buffer size.
	n := int(int64(o.WakeHold)*int64(o.Speed/physic.Hertz)/int64(8*time.Second)) + 2
	d.wake = make([]byte, min(max(n, 2), 4096))
	return d, nil
}

// String names the chip and its bus.
func (d *Dev) String() string { return "pn532(" + d.c.String() + ")" }

// Firmware returns what the last successful Init read.
func (d *Dev) Firmware() frame.Firmware {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fw
}

// SoftwareBitOrder reports whether bytes are bit-reversed in software.
func (d *Dev) SoftwareBitOrder() bool { return d.soft }

// Halt switches the RF field off and releases the lines (and the port, with
// Opts.ClosePort). The Dev is unusable afterwards; Run returns ErrHalted.
func (d *Dev) Halt() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return nil
	}
	var errs []error
	if d.fw.IC != 0 {
		// Best effort and quick: a dead chip must not hold up shutdown.
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := d.exchangeN(ctx, frame.AppendRFField(d.cmd[:0], false), replyRead, 0); err != nil {
			errs = append(errs, fmt.Errorf("field off: %w", err))
		}
		cancel()
	}
	d.halted = true
	if d.busT != nil {
		d.disarm(d.busT)
	}
	if d.irq != nil {
		if err := d.irq.Close(); err != nil {
			errs = append(errs, fmt.Errorf("irq: %w", err))
		}
	}
	if d.rst != nil {
		if err := d.rst.Close(); err != nil {
			errs = append(errs, fmt.Errorf("reset: %w", err))
		}
	}
	if c, ok := d.port.(io.Closer); ok && d.opts.ClosePort {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("port: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pn532: halt: %w", err)
	}
	return nil
}

// Init wakes the chip, resynchronises with it and configures it for
// polling. Run calls it; the smoke tool calls it directly.
func (d *Dev) Init(ctx context.Context) (frame.Firmware, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return frame.Firmware{}, ErrHalted
	}
	fw, err := d.init(ctx)
	if err != nil {
		return fw, fmt.Errorf("pn532: init: %w", err)
	}
	return fw, nil
}

func (d *Dev) init(ctx context.Context) (frame.Firmware, error) {
	d.irqArmed = false
	d.fw = frame.Firmware{}
	for i := range d.wake {
		d.wake[i] = 0
	}
	d.wake[0] = spiStatusRead
	if err := d.tx(d.wake, nil); err != nil {
		return frame.Firmware{}, fmt.Errorf("wake: %w", err)
	}
	// A previous host may have left a command running or a reply unread.
	if err := d.sendACK(); err != nil {
		return frame.Firmware{}, fmt.Errorf("abort: %w", err)
	}
	if err := d.drain(); err != nil {
		return frame.Firmware{}, fmt.Errorf("drain: %w", err)
	}
	// The first SAMConfiguration after wake-up can be lost.
	var err error
	for range 3 {
		if _, err = d.exchange(ctx, frame.AppendSAMConfiguration(d.cmd[:0], 0x14, true), replyRead); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return frame.Firmware{}, fmt.Errorf("sam configuration: %w", err)
	}
	d.irqArmed = true
	reply, err := d.exchange(ctx, frame.AppendGetFirmwareVersion(d.cmd[:0]), replyRead)
	if err != nil {
		return frame.Firmware{}, fmt.Errorf("firmware version: %w", err)
	}
	fw, err := frame.ParseFirmware(reply)
	if err != nil {
		return frame.Firmware{}, fmt.Errorf("firmware version: %w: %w", ErrBadReply, err)
	}
	if fw.IC != frame.PN532IC {
		return fw, fmt.Errorf("%w: firmware says %v", ErrNotPN532, fw)
	}
	if _, err := d.exchange(ctx, frame.AppendMaxRetries(d.cmd[:0], atrRetries, pslRetries, byte(d.opts.MaxRetries)), replyRead); err != nil {
		return fw, fmt.Errorf("max retries: %w", err)
	}
	if _, err := d.exchange(ctx, frame.AppendRFField(d.cmd[:0], false), replyRead); err != nil {
		return fw, fmt.Errorf("field off: %w", err)
	}
	d.fw = fw
	return fw, nil
}

// drain reads and drops whatever frames the chip still holds.
func (d *Dev) drain() error {
	for range 4 {
		ready, err := d.statusReady()
		if err != nil || !ready {
			return err
		}
		f, _, err := d.readOnce(maxRead)
		d.log.Debug("pn532: dropped a stale frame", "kind", f.Kind, "err", err)
	}
	return nil
}

// Poll runs one poll cycle: InListPassiveTarget, then the field off. It
// returns the UID of the card in the field (the one the chip's anticollision
// selected, if there are two), or nil. The UID is valid until the next call.
func (d *Dev) Poll(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return nil, ErrHalted
	}
	uid, err := d.poll(ctx)
	if err != nil {
		return nil, fmt.Errorf("pn532: poll: %w", err)
	}
	return uid, nil
}

func (d *Dev) poll(ctx context.Context) ([]byte, error) {
	reply, err := d.exchange(ctx, frame.AppendInListPassiveTarget(d.cmd[:0], 1), inListRead)
	if err != nil {
		return nil, fmt.Errorf("list targets: %w", err)
	}
	var uid []byte
	t, perr := frame.ParseInList(reply)
	if perr == nil && t.N > 0 {
		uid = d.uid[:copy(d.uid[:], t.T[0].UID)]
	}
	if _, err := d.exchange(ctx, frame.AppendRFField(d.cmd[:0], false), replyRead); err != nil {
		return nil, fmt.Errorf("field off: %w", err)
	}
	if perr != nil {
		return nil, fmt.Errorf("list targets: %w: %w", ErrBadReply, perr)
	}
	return uid, nil
}

// exchange sends one command and returns the reply's PD bytes (aliasing
// d.r, valid until the next exchange).
func (d *Dev) exchange(ctx context.Context, cmd []byte, size int) ([]byte, error) {
	return d.exchangeN(ctx, cmd, size, d.opts.Resends)
}

func (d *Dev) exchangeN(ctx context.Context, cmd []byte, size, resends int) ([]byte, error) {
	var err error
	for attempt := 0; attempt <= resends; attempt++ {
		if err = d.writeCommand(cmd); err != nil {
			return nil, err
		}
		if err = d.readACK(ctx); err == nil {
			break
		}
		if ctx.Err() != nil || !errors.Is(err, ErrNoACK) {
			return nil, err
		}
		d.log.Debug("pn532: no ack, sending again", "cmd", cmd[0], "attempt", attempt+1)
	}
	if err != nil {
		return nil, err
	}
	return d.readReply(ctx, cmd[0], size, resends)
}

func (d *Dev) writeCommand(cmd []byte) error {
	w := append(d.w[:0], spiDataWrite)
	w, err := frame.AppendInfo(w, frame.HostToPN532, cmd)
	if err != nil {
		return err
	}
	return d.tx(w, nil)
}

func (d *Dev) sendACK() error {
	return d.tx(frame.AppendACK(append(d.w[:0], spiDataWrite)), nil)
}

func (d *Dev) sendNACK() error {
	return d.tx(frame.AppendNACK(append(d.w[:0], spiDataWrite)), nil)
}

// readACK waits for the chip's ACK, dropping up to maxStale stale replies
// that a previous exchange left behind.
func (d *Dev) readACK(ctx context.Context) error {
	for range maxStale + 1 {
		if err := d.waitReady(ctx, d.opts.ACKTimeout); err != nil {
			if errors.Is(err, errNotReady) {
				return ErrNoACK
			}
			return err
		}
		f, err := d.readFrame(ctx, ackRead)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrNoACK, err)
		case f.Kind == frame.ACK:
			return nil
		case f.Kind == frame.Error:
			return ErrSyntax
		}
		d.log.Debug("pn532: dropped a stale frame while waiting for ack", "kind", f.Kind)
	}
	return ErrNoACK
}

// readReply waits for and reads the reply to cmd; a frame that fails its
// checks is asked for again with a NACK.
func (d *Dev) readReply(ctx context.Context, cmd byte, size, resends int) ([]byte, error) {
	var last error
	stale := 0
	for try := 0; try <= resends; {
		if err := d.waitReady(ctx, d.opts.ReplyTimeout); err != nil {
			// Abort the command so the chip is not left busy.
			_ = d.sendACK()
			if errors.Is(err, errNotReady) {
				return nil, ErrTimeout
			}
			return nil, err
		}
		f, err := d.readFrame(ctx, size)
		if err == nil {
			reply := f.Kind == frame.Info && f.TFI == frame.PN532ToHost && len(f.Data) > 0
			switch {
			case f.Kind == frame.Error:
				return nil, ErrSyntax
			case reply && f.Data[0] == cmd+1:
				return f.Data, nil
			case (f.Kind == frame.ACK || reply) && stale < maxStale:
				// A late ACK, or the reply to an earlier command the chip
				// finished after all: this command's reply follows. A NACK
				// would only bring the stale frame again.
				stale++
				d.log.Debug("pn532: dropped a stale frame while waiting for a reply", "kind", f.Kind, "cmd", cmd)
				continue
			}
			err = fmt.Errorf("unexpected %v frame (tfi %#x)", f.Kind, f.TFI)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = err
		if try >= resends {
			break
		}
		try++
		if err := d.sendNACK(); err != nil {
			return nil, err
		}
	}
	_ = d.sendACK()
	if last == nil {
		last = errors.New("no reply after the ACK")
	}
	return nil, fmt.Errorf("%w: %w", ErrBadFrame, last)
}

// readFrame reads one frame in one transaction of size bytes; a frame
// longer than that is asked for again (NACK) and read whole.
func (d *Dev) readFrame(ctx context.Context, size int) (frame.Frame, error) {
	f, need, err := d.readOnce(size)
	if !errors.Is(err, frame.ErrTruncated) || need <= size || need > maxRead {
		return f, err
	}
	if err := d.sendNACK(); err != nil {
		return frame.Frame{}, err
	}
	if err := d.waitReady(ctx, d.opts.ReplyTimeout); err != nil {
		return frame.Frame{}, err
	}
	f, _, err = d.readOnce(need)
	return f, err
}

// readOnce reads size bytes after the data-read prefix, chip select held
// low, and decodes them. Frame data aliases d.r.
func (d *Dev) readOnce(size int) (frame.Frame, int, error) {
	w := d.w[:size+1]
	w[0] = spiDataRead
	clear(w[1:])
	r := d.r[:size+1]
	if err := d.tx(w, r); err != nil {
		return frame.Frame{}, 0, err
	}
	if d.irq != nil {
		select { // this frame's edge is spent
		case <-d.irq.Falling():
		default:
		}
	}
	return frame.Decode(r[1:])
}

func (d *Dev) statusReady() (bool, error) {
	w := d.w[:2]
	w[0], w[1] = spiStatusRead, 0
	r := d.r[:2]
	if err := d.tx(w, r); err != nil {
		return false, err
	}
	// A sleeping chip leaves MISO high (FF): only exactly 01 means ready.
	return r[1] == spiReady, nil
}

// tx runs one SPI transaction. w is clobbered when bits are reversed in
// software.
func (d *Dev) tx(w, r []byte) error {
	if d.soft {
		reverse(w)
	}
	if err := d.c.Tx(w, r); err != nil {
		return fmt.Errorf("spi: %w", err)
	}
	if d.soft {
		reverse(r)
	}
	return nil
}

func reverse(b []byte) {
	for i, c := range b {
		b[i] = bits.Reverse8(c)
	}
}

var errNotReady = errors.New("pn532: chip not ready")

// waitReady waits until the chip has a frame for the host: on the IRQ line
// when there is one and SAMConfiguration has armed it, else by polling the
// status byte.
//
// On the line, a falling edge (edges are drained after every read) with the
// line low is the chip saying ready. A line that reads low gives no edge,
// whether it is still low from the previous frame or stuck: while it reads
// low the status byte is polled. A line that stays high is checked against
// the status byte every ACKTimeout and at the timeout, so a line that never
// falls costs at most that. A wait where the line contradicts the status
// byte (low while the chip is not ready, beyond one StatusPoll; high while
// it is ready) is a miss; irqMissesOK misses with no clean edge in between
// and the line is given up for status polling, with one warning.
func (d *Dev) waitReady(ctx context.Context, timeout time.Duration) error {
	if d.irq == nil || !d.irqArmed || d.irqOff {
		return d.pollStatus(ctx, timeout)
	}
	start := d.clk.Now()
	deadline := start.Add(timeout)
	check := start.Add(d.opts.ACKTimeout) // next status read while the line is high
	edge, miss := false, false
	select { // an edge since the last read is fresh evidence
	case <-d.irq.Falling():
		edge = true
	default:
	}
	for {
		low := d.irqLow()
		if low && edge {
			d.irqMiss = 0
			return nil
		}
		now := d.clk.Now()
		if low || !now.Before(check) || !now.Before(deadline) {
			ready, err := d.statusReady()
			if err != nil {
				return err
			}
			switch {
			case ready && !low:
				miss = true // the chip is ready and the line never fell
			case !ready && low && now.Sub(start) >= d.opts.StatusPoll:
				miss = true // the line says ready and the chip says not
			}
			if ready {
				d.irqMissed(miss)
				return nil
			}
			if !low {
				check = now.Add(d.opts.ACKTimeout)
			}
		}
		left := deadline.Sub(now)
		if left <= 0 {
			d.irqMissed(miss)
			return errNotReady
		}
		wait := min(left, check.Sub(now))
		if low {
			wait = min(left, d.opts.StatusPoll)
		}
		t := d.arm(&d.busT, wait)
		select {
		case <-d.irq.Falling():
			edge = true
		case <-t.C():
		case <-ctx.Done():
			d.disarm(t)
			return ctx.Err()
		}
		d.disarm(t)
	}
}

// irqMissed counts a wait in which the IRQ line contradicted the chip and
// gives the line up after irqMissesOK of them.
func (d *Dev) irqMissed(miss bool) {
	if !miss {
		return
	}
	d.irqMiss++
	if d.irqMiss >= irqMissesOK && !d.irqOff {
		d.irqOff = true
		d.lim.Log(d.log, d.clk.Now(), slog.LevelWarn, "irq",
			"pn532: IRQ line does not follow the chip (stuck, unwired or miswired); polling the status byte instead")
	}
}

func (d *Dev) irqLow() bool {
	v, err := d.irq.Value()
	return err == nil && v == 0
}

func (d *Dev) pollStatus(ctx context.Context, timeout time.Duration) error {
	deadline := d.clk.Now().Add(timeout)
	for {
		ready, err := d.statusReady()
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		left := deadline.Sub(d.clk.Now())
		if left <= 0 {
			return errNotReady
		}
		t := d.arm(&d.busT, min(left, d.opts.StatusPoll))
		select {
		case <-t.C():
			d.disarm(t)
		case <-ctx.Done():
			d.disarm(t)
			return ctx.Err()
		}
	}
}

// arm (re)starts the timer in *slot, making it on first use, so waiting
// allocates nothing.
func (d *Dev) arm(slot *clock.Timer, dur time.Duration) clock.Timer {
	if *slot == nil {
		*slot = d.clk.NewTimer(dur)
	} else {
		(*slot).Reset(dur)
	}
	return *slot
}

// disarm stops t and empties its channel, so the next arm starts clean.
func (d *Dev) disarm(t clock.Timer) {
	t.Stop()
	select {
	case <-t.C():
	default:
	}
}

// hardReset pulses RSTPD_N low.
func (d *Dev) hardReset(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return ErrHalted
	}
	if d.rst == nil {
		return nil
	}
	if err := d.rst.SetValue(0); err != nil {
		return fmt.Errorf("pn532: reset: %w", err)
	}
	err := d.sleep(ctx, &d.busT, d.opts.ResetPulse)
	if err2 := d.rst.SetValue(1); err2 != nil {
		return fmt.Errorf("pn532: reset: %w", err2)
	}
	if err != nil {
		return err
	}
	d.irqArmed = false
	return d.sleep(ctx, &d.busT, d.opts.ResetSettle)
}

// sleep waits dur on the timer in slot, or until ctx is done.
func (d *Dev) sleep(ctx context.Context, slot *clock.Timer, dur time.Duration) error {
	t := d.arm(slot, dur)
	defer d.disarm(t)
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
