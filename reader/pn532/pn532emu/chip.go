// Package pn532emu is a PN532 emulator behind periph's spi.Port, at the byte
// level, for tests and the demo: the real driver (package pn532) runs against
// it unchanged.
//
// The emulated chip listens least significant bit first, as the real one
// does: when the host's port shifts MSB-first (the driver reversing bits in
// software) it sees the host's bytes reversed and reverses its own answers,
// so a driver that forgets to reverse talks to it in garbage. It refuses
// LSB-first mode on Connect by default, like the Raspberry Pi.
//
// Its Connect behaves as periph's sysfs-spi port does: it may be called
// once, and a port that refused the mode (LSB-first) stays connected and
// refuses every later Connect, so a driver cannot ask for LSB-first and fall
// back to mode 0 on the same port.
//
// It keeps the chip's states that a driver must get right: asleep after
// power-on or reset until chip select is held low ≥ 2 ms; the first command
// after wake-up lost; IRQ off until SAMConfiguration; InListPassiveTarget
// blocking forever while MaxRetries is FF, or while MxRtyATR is FF and a
// phone presenting itself as an NFC-DEP target is in the field; an ACK from
// the host, or a new command, aborting the command in progress (its
// unready ACK and reply are dropped; a reply already ready stays, as after
// a host reboot); a NACK repeating the last reply; a reply read across two
// transactions losing the byte clocked during the second prefix.
//
// Cards enter and leave the field (Place, Remove); with two cards in the
// field, InListPassiveTarget selects the one whose UID is greatest in byte
// order, every time, as a reader that resolves collisions towards 1 would.
// Faults are injected with Inject; Opts.StaleFrames brings back stale frames
// of superseded commands (the emulator's old, unfaithful default). Bus time
// is modelled from byte count and clock speed (BusTime) but not slept.
package pn532emu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/reader/pn532/frame"
	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// Card is a card the emulated field can hold.
type Card struct {
	UID     []byte
	SENSRes [2]byte
	SELRes  byte
	ATS     []byte // with TL; sent when SELRes has bit 0x20
}

// DESFire is a MIFARE DESFire EV1 card with uid (UiTPAS cards are these).
func DESFire(uid []byte) Card {
	return Card{UID: bytes.Clone(uid), SENSRes: [2]byte{0x03, 0x44}, SELRes: 0x20,
		ATS: []byte{0x06, 0x75, 0x77, 0x81, 0x02, 0x80}}
}

// Classic is a MIFARE Classic 1K card with uid.
func Classic(uid []byte) Card {
	return Card{UID: bytes.Clone(uid), SENSRes: [2]byte{0x00, 0x04}, SELRes: 0x08}
}

// Phone is a phone in card emulation that also presents itself as an NFC-DEP
// (ISO/IEC 18092) target: SEL_RES has bits 0x40 (NFC-DEP) and 0x20
// (ISO 14443-4), and the UID is a random one (08…). With MxRtyATR FF (the
// chip's default) the emulated chip retries ATR_REQ at it forever and
// InListPassiveTarget does not answer until the host aborts it; with a
// finite MxRtyATR it answers as for any ISO 14443-4 card.
func Phone(uid []byte) Card {
	return Card{UID: bytes.Clone(uid), SENSRes: [2]byte{0x00, 0x04}, SELRes: 0x60,
		ATS: []byte{0x05, 0x78, 0x80, 0x70, 0x02}}
}

// depTarget reports whether the card offers NFC-DEP (SEL_RES bit 0x40).
func (k Card) depTarget() bool { return k.SELRes&0x40 != 0 }

// Opts configures a Chip.
type Opts struct {
	// RefuseLSBFirst makes Connect fail for spi.LSBFirst, as spidev does on
	// a Raspberry Pi.
	RefuseLSBFirst bool
	// LoseFirstAfterWake drops the first command after wake-up (no ACK).
	LoseFirstAfterWake bool
	// Awake starts the chip awake and configured, as a previous host left it.
	Awake bool
	// Firmware is what GetFirmwareVersion answers (IC Ver Rev Support).
	Firmware [4]byte
	// ListTime is the RF time one InListPassiveTarget takes.
	ListTime time.Duration
	// StaleFrames is a fault: a new command does not supersede the one in
	// progress. An InListPassiveTarget still waiting for a card, or frames
	// of a command not yet ready, stay queued ahead of the new command's
	// ACK (real chips abort the old command). Only the host's ACK aborts.
	StaleFrames bool
}

// DefaultOpts is a PN532 v1.6 behind a Raspberry Pi's SPI controller.
var DefaultOpts = Opts{
	RefuseLSBFirst:     true,
	LoseFirstAfterWake: true,
	Firmware:           [4]byte{0x32, 0x01, 0x06, 0x07},
}

// FaultKind names a fault.
type FaultKind int

// Faults.
const (
	// DropACK loses the next Count commands: no ACK, no reply.
	DropACK FaultKind = iota + 1
	// CorruptLCS sends the next Count replies with a wrong length checksum
	// (a NACK brings a good copy).
	CorruptLCS
	// CorruptDCS does the same with the data checksum.
	CorruptDCS
	// Garbage replaces the next Count replies with noise (a NACK brings the
	// real reply).
	Garbage
	// NoisyPreamble puts noise before the next Count replies' start code.
	NoisyPreamble
	// StaleReply leaves a reply from before a host reboot waiting in the
	// chip, which is awake and configured as that host left it.
	StaleReply
	// Silence makes the chip ignore the next Count commands, or everything
	// until RSTPD_N is pulsed when Count is 0.
	Silence
	// SlowReply delays the next Count replies by Delay.
	SlowReply
	// SlowACK delays the ACK of the next Count commands by Delay (and their
	// replies with it), as a chip busy just after power-on does.
	SlowACK
	numFaults
)

func (k FaultKind) String() string {
	names := [...]string{"none", "drop-ack", "corrupt-lcs", "corrupt-dcs", "garbage", "noisy-preamble", "stale-reply", "silence", "slow-reply", "slow-ack"}
	if k < 0 || int(k) >= len(names) {
		return "fault(" + fmt.Sprint(int(k)) + ")"
	}
	return names[k]
}

// Fault is one injection.
type Fault struct {
	Kind  FaultKind
	Count int           // occurrences; 0 means 1 (for Silence: until reset)
	Delay time.Duration // SlowReply, SlowACK
}

// Stats counts what the chip saw.
type Stats struct {
	Commands   int // command frames received (lost ones included)
	Lost       int // commands dropped (wake-up, DropACK, Silence)
	ACKs       int // ACK frames from the host (aborts)
	NACKs      int // NACK frames from the host
	BadFrames  int // host frames that failed their checksums
	Lists      int // InListPassiveTarget answered
	Wakes      int
	Resets     int
	SplitReads int // reply reads that continued a partly read frame
}

// ErrClosed is returned once the chip is closed.
var ErrClosed = errors.New("pn532emu: closed")

const (
	wakeHold = 2 * time.Millisecond
	slotSize = 320
	queueLen = 6
)

// outFrame is a frame the chip has for the host.
type outFrame struct {
	buf     [slotSize]byte
	n, pos  int
	readyAt time.Time
	reply   bool // a reply (NACK repeats these), not an ACK
}

type cardState struct {
	Card
	listed int // InListPassiveTarget replies that named it
}

// Chip is an emulated PN532. It implements spi.Port; IRQ and Reset give its
// two GPIO lines.
type Chip struct {
	clk  clock.Clock
	opts Opts

	mu        sync.Mutex
	connected bool
	conn      *emuConn // what the one successful Connect returned
	lsb       bool
	hz        int64
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup

	busTime    time.Duration
	inReset    bool
	awake      bool
	loseNext   bool
	configured bool
	irqOn      bool
	irqLow     bool
	irqClosed  bool
	falling    chan struct{}
	field      bool
	maxRetries byte      // MxRtyPassiveActivation
	maxATR     byte      // MxRtyATR
	pendList   byte      // MaxTg of an InListPassiveTarget waiting for a card; 0 none
	holdUntil  time.Time // the command in progress answers no earlier (SlowACK)

	cards   []cardState
	listSeq int
	notify  chan struct{} // closed and replaced on every InListPassiveTarget answer
	waiters int           // goroutines waiting on notify

	q    [queueLen]outFrame
	head int
	qn   int
	last outFrame // last reply, clean, for NACK
	hasL bool

	faults   [numFaults]int
	delay    time.Duration
	ackDelay time.Duration
	silentR  bool // silent until reset

	in    [4097]byte
	reply [300]byte
	stats Stats
}

// New returns a powered chip (asleep, unless opts.Awake). nil opts means
// DefaultOpts.
func New(clk clock.Clock, opts *Opts) *Chip {
	o := DefaultOpts
	if opts != nil {
		o = *opts
	}
	if o.Firmware == ([4]byte{}) {
		o.Firmware = DefaultOpts.Firmware
	}
	if clk == nil {
		clk = clock.Real{}
	}
	c := &Chip{clk: clk, opts: o, done: make(chan struct{}), falling: make(chan struct{}, 1),
		notify: make(chan struct{}), maxRetries: 0xFF, maxATR: 0xFF}
	if o.Awake {
		c.awake, c.configured, c.irqOn = true, true, true
	}
	return c
}

// String implements spi.Port.
func (c *Chip) String() string { return "pn532emu" }

// Close stops the chip's timers; every later transaction fails.
func (c *Chip) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// Connect implements spi.Port as periph's sysfs-spi does
// (periph.io/x/host/v3/sysfs/spi.go): the arguments are checked first, then
// the port is marked connected, then the mode is set, which fails for
// LSB-first with RefuseLSBFirst as spidev's SPI_IOC_WR_MODE does on a
// Raspberry Pi. A port is connected once: every later Connect fails, also
// after a first one that failed on the mode. Beyond periph, the chip wants
// mode 0 and 8-bit words and refuses others (the port stays connected).
func (c *Chip) Connect(f physic.Frequency, mode spi.Mode, bitsPerWord int) (spi.Conn, error) {
	if f > physic.GigaHertz {
		return nil, fmt.Errorf("pn532emu: invalid speed %s; maximum supported clock is 1GHz", f)
	}
	if f < 100*physic.Hertz {
		return nil, fmt.Errorf("pn532emu: invalid speed %s; minimum supported clock is 100Hz; did you forget to multiply by physic.MegaHertz?", f)
	}
	if mode&^(spi.Mode3|spi.HalfDuplex|spi.NoCS|spi.LSBFirst) != 0 {
		return nil, fmt.Errorf("pn532emu: invalid mode %v", mode)
	}
	if bitsPerWord < 1 || bitsPerWord >= 256 {
		return nil, fmt.Errorf("pn532emu: invalid bits %d", bitsPerWord)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected {
		return nil, errors.New("pn532emu: Connect() can only be called exactly once")
	}
	c.connected = true
	c.hz = int64(f / physic.Hertz)
	switch {
	case mode&spi.LSBFirst != 0 && c.opts.RefuseLSBFirst:
		return nil, fmt.Errorf("pn532emu: setting mode %v failed: invalid argument", mode)
	case mode&spi.Mode3 != spi.Mode0 || mode&(spi.HalfDuplex|spi.NoCS) != 0:
		return nil, fmt.Errorf("pn532emu: PN532 needs mode 0, got %v", mode)
	case bitsPerWord != 8:
		return nil, fmt.Errorf("pn532emu: PN532 needs 8 bits per word, got %d", bitsPerWord)
	}
	c.lsb = mode&spi.LSBFirst != 0
	c.conn = &emuConn{c: c}
	return c.conn, nil
}

// Place puts cards in the field.
func (c *Chip) Place(cards ...Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range cards {
		k.UID = bytes.Clone(k.UID)
		c.cards = append(c.cards, cardState{Card: k})
	}
	if c.pendList != 0 && len(c.cards) > 0 && !c.atrStall() {
		c.answerList(c.pendList)
		c.pendList = 0
		c.refresh()
	}
}

// atrStall reports whether InListPassiveTarget would retry ATR_REQ forever:
// MxRtyATR is FF and an NFC-DEP target is in the field.
func (c *Chip) atrStall() bool {
	if c.maxATR != 0xFF {
		return false
	}
	for _, k := range c.cards {
		if k.depTarget() {
			return true
		}
	}
	return false
}

// Remove takes the card with uid out of the field.
func (c *Chip) Remove(uid []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.cards {
		if bytes.Equal(c.cards[i].UID, uid) {
			c.cards = append(c.cards[:i], c.cards[i+1:]...)
			return
		}
	}
}

// Clear empties the field.
func (c *Chip) Clear() {
	c.mu.Lock()
	c.cards = nil
	c.mu.Unlock()
}

// Inject arms a fault.
func (c *Chip) Inject(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := max(f.Count, 1)
	switch f.Kind {
	case StaleReply:
		c.awake, c.configured, c.irqOn = true, true, true
		c.maxRetries = 0x01
		// The reply an InListPassiveTarget of the previous host never read.
		data := []byte{0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF}
		s := c.push(false)
		b, _ := frame.AppendInfo(s.buf[:0], frame.PN532ToHost, data)
		s.n, s.reply = len(b), true
	case Silence:
		if f.Count == 0 {
			c.silentR = true
		} else {
			c.faults[Silence] += n
		}
	case SlowReply:
		c.faults[SlowReply] += n
		c.delay = f.Delay
	case SlowACK:
		c.faults[SlowACK] += n
		c.ackDelay = f.Delay
	default:
		if f.Kind > 0 && f.Kind < numFaults {
			c.faults[f.Kind] += n
		}
	}
	c.refresh()
}

// Pending reports how many injected fault occurrences are still armed.
func (c *Chip) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.faults {
		n += v
	}
	if c.silentR {
		n++
	}
	return n
}

// Stats returns the counters.
func (c *Chip) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// BusTime is the time the bus has been busy: bytes × 8 / clock.
func (c *Chip) BusTime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busTime
}

// Field reports whether the RF field is on.
func (c *Chip) Field() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.field
}

// ListSeq counts InListPassiveTarget answers.
func (c *Chip) ListSeq() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listSeq
}

// WaitListed waits until an InListPassiveTarget answer named the card with uid.
func (c *Chip) WaitListed(ctx context.Context, uid []byte) error {
	return c.waitFor(ctx, func() bool {
		for _, k := range c.cards {
			if bytes.Equal(k.UID, uid) {
				return k.listed > 0
			}
		}
		return false
	})
}

// WaitListSeq waits until more than seq InListPassiveTarget answers were given.
func (c *Chip) WaitListSeq(ctx context.Context, seq int) error {
	return c.waitFor(ctx, func() bool { return c.listSeq > seq })
}

func (c *Chip) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok, ch, closed := cond(), c.notify, c.closed
		if !ok && !closed {
			c.waiters++
		}
		c.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			return ErrClosed
		}
		var err error
		select {
		case <-ch:
		case <-c.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		c.mu.Lock()
		c.waiters--
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// IRQ returns the chip's P70_IRQ line (it satisfies pn532.IRQ).
func (c *Chip) IRQ() *IRQLine { return &IRQLine{c: c} }

// Reset returns the chip's RSTPD_N line (it satisfies pn532.Reset).
func (c *Chip) Reset() *ResetLine { return &ResetLine{c: c} }

// IRQLine is the emulated P70_IRQ.
type IRQLine struct{ c *Chip }

// Value reads the line: 0 while the chip has a frame ready.
func (l *IRQLine) Value() (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.c.refresh()
	if l.c.irqLow {
		return 0, nil
	}
	return 1, nil
}

// Falling delivers falling edges (coalesced).
func (l *IRQLine) Falling() <-chan struct{} { return l.c.falling }

// Close releases the line: no more edges.
func (l *IRQLine) Close() error {
	l.c.mu.Lock()
	l.c.irqClosed = true
	l.c.mu.Unlock()
	return nil
}

// ResetLine is the emulated RSTPD_N.
type ResetLine struct{ c *Chip }

// SetValue drives the line: 0 holds the chip in reset, 1 lets it boot.
func (l *ResetLine) SetValue(v int) error {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if v == 0 {
		if !c.inReset {
			c.stats.Resets++
		}
		c.inReset = true
		c.powerOn()
	} else {
		c.inReset = false
	}
	c.refresh()
	return nil
}

// Close releases the line.
func (l *ResetLine) Close() error { return nil }

// powerOn puts the chip in its power-on state.
func (c *Chip) powerOn() {
	c.awake, c.loseNext, c.configured, c.irqOn = false, false, false, false
	c.field, c.maxRetries, c.maxATR, c.pendList = false, 0xFF, 0xFF, 0
	c.holdUntil = time.Time{}
	c.head, c.qn, c.hasL = 0, 0, false
	c.silentR = false
	c.faults[Silence] = 0
}

// refresh recomputes the IRQ level and signals a falling edge.
func (c *Chip) refresh() {
	low := c.irqOn && c.awake && !c.inReset && !c.silent() && c.ready()
	if low && !c.irqLow && !c.irqClosed {
		select {
		case c.falling <- struct{}{}:
		default:
		}
	}
	c.irqLow = low
}

func (c *Chip) silent() bool { return c.silentR || c.faults[Silence] > 0 }

// ready reports whether the head frame may be read now.
func (c *Chip) ready() bool {
	return c.qn > 0 && !c.q[c.head].readyAt.After(c.clk.Now())
}

// push appends a frame slot to the queue (dropping the oldest when full).
func (c *Chip) push(front bool) *outFrame {
	if c.qn == queueLen {
		c.head = (c.head + 1) % queueLen
		c.qn--
	}
	var i int
	if front {
		c.head = (c.head + queueLen - 1) % queueLen
		i = c.head
	} else {
		i = (c.head + c.qn) % queueLen
	}
	c.qn++
	s := &c.q[i]
	s.n, s.pos, s.readyAt, s.reply = 0, 0, time.Time{}, false
	return s
}

func (c *Chip) pop() {
	c.head = (c.head + 1) % queueLen
	c.qn--
}

type emuConn struct{ c *Chip }

func (e *emuConn) String() string       { return "pn532emu" }
func (e *emuConn) Duplex() conn.Duplex  { return conn.Full }
func (e *emuConn) Tx(w, r []byte) error { return e.c.tx(w, r) }

// TxPackets runs the packets as one transaction (chip select low throughout).
func (e *emuConn) TxPackets(p []spi.Packet) error {
	var w, r []byte
	for _, k := range p {
		n := max(len(k.W), len(k.R))
		w = append(w, k.W...)
		w = append(w, make([]byte, n-len(k.W))...)
	}
	r = make([]byte, len(w))
	if err := e.c.tx(w, r); err != nil {
		return err
	}
	off := 0
	for _, k := range p {
		n := max(len(k.W), len(k.R))
		copy(k.R, r[off:off+n])
		off += n
	}
	return nil
}

// tx is one chip-select-low transaction, as bytes on the wire.
func (c *Chip) tx(w, r []byte) error {
	n := max(len(w), len(r))
	if n == 0 {
		return errors.New("pn532emu: empty transaction")
	}
	if n > len(c.in) {
		return fmt.Errorf("pn532emu: %d bytes is more than spidev's buffer", n)
	}
	if len(r) != 0 && len(w) != 0 && len(r) != len(w) {
		return fmt.Errorf("pn532emu: Tx(): when both w and r are used, they must be the same size; got %d and %d bytes", len(w), len(r))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.conn == nil {
		return errors.New("pn532emu: not connected")
	}
	dur := time.Duration(int64(n) * 8 * int64(time.Second) / c.hz)
	c.busTime += dur
	// What the chip hears, LSB first.
	in := c.in[:n]
	clear(in)
	copy(in, w)
	if !c.lsb {
		for i, b := range in {
			in[i] = bits.Reverse8(b)
		}
	}
	out := r
	if out == nil {
		out = c.reply[:0] // the host does not listen
	}
	c.transact(in, out, dur)
	if !c.lsb {
		for i, b := range out {
			out[i] = bits.Reverse8(b)
		}
	}
	c.refresh()
	return nil
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

// transact handles one transaction in logical (LSB-first) bytes.
func (c *Chip) transact(in, out []byte, dur time.Duration) {
	if c.inReset {
		fill(out, 0xFF)
		return
	}
	if !c.awake {
		fill(out, 0xFF) // MISO high while powered down
		if dur >= wakeHold {
			c.awake = true
			c.loseNext = c.opts.LoseFirstAfterWake
			c.stats.Wakes++
		}
		return
	}
	if c.silent() {
		fill(out, 0xFF)
		if in[0] == 0x01 {
			if f, _, err := frame.Decode(in[1:]); err == nil && f.Kind == frame.Info {
				c.stats.Commands++
				c.stats.Lost++
				if c.faults[Silence] > 0 {
					c.faults[Silence]--
				}
			}
		}
		return
	}
	switch in[0] {
	case 0x02:
		fill(out, 0x00)
		if len(out) > 1 && c.ready() {
			fill(out[1:], 0x01)
		}
	case 0x01:
		fill(out, 0x00)
		c.hostWrite(in[1:])
	case 0x03:
		c.hostRead(out)
	default:
		fill(out, 0xFF)
	}
}

func (c *Chip) hostWrite(b []byte) {
	f, _, err := frame.Decode(b)
	if err != nil {
		c.stats.BadFrames++
		return
	}
	switch f.Kind {
	case frame.ACK:
		c.stats.ACKs++
		c.abort()
	case frame.NACK:
		c.stats.NACKs++
		if !c.hasL {
			return
		}
		if c.qn > 0 && c.q[c.head].reply && c.q[c.head].pos > 0 {
			c.pop() // the partly read reply is sent again from the start
		}
		s := c.push(true)
		s.buf, s.n, s.reply = c.last.buf, c.last.n, true
		c.corrupt(s)
	case frame.Info:
		if f.TFI != frame.HostToPN532 {
			c.stats.BadFrames++
			return
		}
		c.stats.Commands++
		if c.loseNext {
			c.loseNext = false
			c.stats.Lost++
			return
		}
		if c.faults[DropACK] > 0 {
			c.faults[DropACK]--
			c.stats.Lost++
			return
		}
		if !c.opts.StaleFrames {
			c.abort() // a new command supersedes the one in progress
		}
		a := c.push(false)
		a.n = len(frame.AppendACK(a.buf[:0]))
		c.holdUntil = time.Time{}
		if c.faults[SlowACK] > 0 {
			c.faults[SlowACK]--
			a.readyAt = c.clk.Now().Add(c.ackDelay)
			c.holdUntil = a.readyAt
			c.schedule(c.ackDelay)
		}
		c.execute(f.Data)
	}
}

// abort ends the command in progress: an InListPassiveTarget waiting for a
// card, and the frames not yet ready at the queue's tail (its ACK or reply).
// Frames already ready stay for the host to read.
func (c *Chip) abort() {
	c.pendList = 0
	for c.qn > 0 {
		last := (c.head + c.qn - 1) % queueLen
		if !c.q[last].readyAt.After(c.clk.Now()) {
			break
		}
		c.qn--
	}
}

// execute runs a command and queues its reply.
func (c *Chip) execute(cmd []byte) {
	r := c.reply[:0]
	bad := false
	switch cmd[0] {
	case frame.CmdGetFirmwareVersion:
		r = append(r, 0x03, c.opts.Firmware[0], c.opts.Firmware[1], c.opts.Firmware[2], c.opts.Firmware[3])
	case frame.CmdSAMConfiguration:
		if len(cmd) < 2 || cmd[1] < 1 || cmd[1] > 4 {
			bad = true
			break
		}
		c.configured = true
		c.irqOn = !(len(cmd) >= 4 && cmd[3] == 0)
		r = append(r, 0x15)
	case frame.CmdRFConfiguration:
		switch {
		case len(cmd) >= 3 && cmd[1] == frame.RFItemField:
			c.field = cmd[2]&0x01 != 0
		case len(cmd) >= 5 && cmd[1] == frame.RFItemMaxRetries:
			c.maxATR, c.maxRetries = cmd[2], cmd[4]
		case len(cmd) >= 2 && cmd[1] != frame.RFItemField && cmd[1] != frame.RFItemMaxRetries:
		default:
			bad = true
		}
		r = append(r, 0x33)
	case frame.CmdInListPassiveTarget:
		if len(cmd) < 3 || cmd[1] < 1 || cmd[1] > 2 || cmd[2] != 0x00 || !c.configured {
			bad = true
			break
		}
		c.field = true
		if (len(c.cards) == 0 && c.maxRetries == 0xFF) || c.atrStall() {
			c.pendList = cmd[1] // blocks until a card comes or the host aborts
			return
		}
		c.answerList(cmd[1])
		return
	case frame.CmdInRelease:
		r = append(r, 0x53, 0x00)
	case frame.CmdPowerDown:
		r = append(r, 0x17, 0x00)
	default:
		bad = true
	}
	if bad {
		s := c.push(false)
		s.n, s.reply = len(frame.AppendError(s.buf[:0])), true
		s.readyAt = c.holdUntil
		c.last, c.hasL = *s, true
		return
	}
	c.queueReply(r, 0)
}

// answerList queues InListPassiveTarget's answer for the cards in the field.
func (c *Chip) answerList(maxTg byte) {
	// Anticollision picks greatest UIDs first; order is by index to stay
	// allocation-free.
	var pick [2]int
	n := 0
	for k := 0; k < int(maxTg) && k < len(c.cards); k++ {
		best := -1
		for i := range c.cards {
			if (n > 0 && i == pick[0]) || (best >= 0 && bytes.Compare(c.cards[i].UID, c.cards[best].UID) <= 0) {
				continue
			}
			best = i
		}
		if best < 0 {
			break
		}
		pick[n] = best
		n++
	}
	r := append(c.reply[:0], 0x4B, byte(n))
	for i := 0; i < n; i++ {
		k := &c.cards[pick[i]]
		k.listed++
		r = append(r, byte(i+1), k.SENSRes[0], k.SENSRes[1], k.SELRes, byte(len(k.UID)))
		r = append(r, k.UID...)
		if k.SELRes&0x20 != 0 {
			r = append(r, k.ATS...)
		}
	}
	c.stats.Lists++
	c.listSeq++
	if c.waiters > 0 { // only then: a new channel per answer would allocate
		close(c.notify)
		c.notify = make(chan struct{})
	}
	c.queueReply(r, c.opts.ListTime)
}

// queueReply frames data and queues it, applying armed faults.
func (c *Chip) queueReply(data []byte, delay time.Duration) {
	if c.faults[SlowReply] > 0 {
		c.faults[SlowReply]--
		delay += c.delay
	}
	s := c.push(false)
	b, _ := frame.AppendInfo(s.buf[:0], frame.PN532ToHost, data)
	s.n, s.reply = len(b), true
	c.last, c.hasL = *s, true
	c.corrupt(s)
	if delay > 0 {
		s.readyAt = c.clk.Now().Add(delay)
		c.schedule(delay)
	}
	if s.readyAt.Before(c.holdUntil) {
		s.readyAt = c.holdUntil // never before its own ACK
	}
}

// corrupt applies an armed transmission fault to s; resends (NACK) are hit
// too while the fault's count lasts.
func (c *Chip) corrupt(s *outFrame) {
	switch {
	case c.faults[CorruptLCS] > 0:
		c.faults[CorruptLCS]--
		s.buf[4] ^= 0x5A
	case c.faults[CorruptDCS] > 0:
		c.faults[CorruptDCS]--
		s.buf[s.n-2] ^= 0x5A
	case c.faults[Garbage] > 0:
		c.faults[Garbage]--
		noise := [...]byte{0x3C, 0x00, 0xFF, 0x07, 0x55, 0xA5, 0x00, 0xFF, 0x13, 0x99, 0xC3}
		s.n = copy(s.buf[:], noise[:])
	case c.faults[NoisyPreamble] > 0:
		c.faults[NoisyPreamble]--
		noise := [...]byte{0x5A, 0xA5, 0xF0, 0x0F, 0x00, 0x00}
		copy(s.buf[len(noise):], s.buf[:s.n])
		copy(s.buf[:], noise[:])
		s.n += len(noise)
	}
}

// schedule re-evaluates the IRQ line after d, so a delayed reply raises its edge.
func (c *Chip) schedule(d time.Duration) {
	if c.closed {
		return
	}
	t := c.clk.NewTimer(d)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-t.C():
			c.mu.Lock()
			c.refresh()
			c.mu.Unlock()
		case <-c.done:
			t.Stop()
		}
	}()
}

// hostRead clocks out the head frame. A frame read in two transactions loses
// the byte clocked out during the second one's prefix, as on the real chip.
func (c *Chip) hostRead(out []byte) {
	if len(out) == 0 {
		return
	}
	if !c.ready() {
		fill(out, 0x00)
		return
	}
	s := &c.q[c.head]
	i := 1
	if s.pos > 0 {
		c.stats.SplitReads++
		i = 0 // the prefix byte's slot carries (and loses) the next byte
	} else {
		out[0] = 0x01
	}
	for ; i < len(out); i++ {
		if s.pos < s.n {
			out[i] = s.buf[s.pos]
			s.pos++
		} else {
			out[i] = 0x00
		}
	}
	if s.pos >= s.n {
		c.pop()
	}
}

// LimitSpeed implements spi.PortCloser (the clock is set by Connect).
func (c *Chip) LimitSpeed(f physic.Frequency) error { return nil }

var _ spi.PortCloser = (*Chip)(nil)
