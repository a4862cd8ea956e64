package pn532emu

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"sync"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
)

// Session is a recorded bus conversation: what cmd/pn532-smoke -record
// writes from real hardware (periph's spitest.Record underneath), so that a
// bench session becomes a playback test.
type Session struct {
	// Note says where the recording comes from (board, module, cards).
	Note             string `json:"note,omitempty"`
	SpeedHz          int64  `json:"speedHz"`
	SoftwareBitOrder bool   `json:"softwareBitOrder"`
	// Taps are the UIDs (hex) the driver reported during the session.
	Taps []string `json:"taps"`
	// Ops are the transactions, as bytes on the wire.
	Ops []Op `json:"ops"`
}

// Op is one transaction.
type Op struct {
	W HexBytes `json:"w,omitempty"`
	R HexBytes `json:"r,omitempty"`
}

// HexBytes is JSON as spaced hex, readable in a diff.
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) {
	var b strings.Builder
	for i, c := range h {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(hex.EncodeToString([]byte{c}))
	}
	return []byte(b.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HexBytes) UnmarshalText(t []byte) error {
	v, err := hex.DecodeString(strings.ReplaceAll(string(t), " ", ""))
	if err != nil {
		return fmt.Errorf("pn532emu: session: %w", err)
	}
	*h = v
	return nil
}

// NewSession makes a Session from recorded transactions.
func NewSession(ops []conntest.IO, speedHz int64, software bool) Session {
	s := Session{SpeedHz: speedHz, SoftwareBitOrder: software, Ops: make([]Op, len(ops))}
	for i, op := range ops {
		s.Ops[i] = Op{W: bytes.Clone(op.W), R: bytes.Clone(op.R)}
	}
	return s
}

// ReadSession decodes a session file.
func ReadSession(r io.Reader) (Session, error) {
	var s Session
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return Session{}, fmt.Errorf("pn532emu: read session: %w", err)
	}
	return s, nil
}

// Write encodes the session.
func (s Session) Write(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", " ")
	if err := e.Encode(s); err != nil {
		return fmt.Errorf("pn532emu: write session: %w", err)
	}
	return nil
}

// Replay returns a port that plays the session back: every write must match
// byte for byte, reads return what was recorded. Status reads are matched
// loosely, since how often a driver polls depends on timing: a status read
// with none recorded next answers "ready", and recorded status reads the
// replay does not ask for are skipped.
func (s Session) Replay() *Replay {
	return &Replay{s: s}
}

// ErrReplayEnd: the driver went on after the recording ended.
var ErrReplayEnd = errors.New("pn532emu: replay: beyond the recording")

// Replay is a spi.PortCloser playing a Session back.
type Replay struct {
	s         Session
	mu        sync.Mutex
	next      int
	connected bool
	err       error
}

var _ spi.PortCloser = (*Replay)(nil)

func (p *Replay) String() string                      { return "replay" }
func (p *Replay) LimitSpeed(f physic.Frequency) error { return nil }

// Connect accepts mode 0, with LSB-first exactly when the recording had it.
func (p *Replay) Connect(f physic.Frequency, mode spi.Mode, bitsPerWord int) (spi.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected {
		return nil, errors.New("pn532emu: replay: Connect called twice")
	}
	if (mode&spi.LSBFirst != 0) == p.s.SoftwareBitOrder {
		return nil, errors.New("pn532emu: replay: LSB-first mode differs from the recording")
	}
	p.connected = true
	return replayConn{p}, nil
}

// Remaining is how many recorded transactions (status reads aside) are left.
func (p *Replay) Remaining() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, op := range p.s.Ops[p.next:] {
		if !p.isStatus(op.W) {
			n++
		}
	}
	return n
}

// Err is the first mismatch, if any.
func (p *Replay) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close reports a mismatch or unplayed transactions.
func (p *Replay) Close() error {
	if err := p.Err(); err != nil {
		return err
	}
	if n := p.Remaining(); n > 0 {
		return fmt.Errorf("pn532emu: replay: %d transactions not played", n)
	}
	return nil
}

func (p *Replay) logical(b byte) byte {
	if p.s.SoftwareBitOrder {
		return bits.Reverse8(b)
	}
	return b
}

func (p *Replay) isStatus(w []byte) bool { return len(w) == 2 && p.logical(w[0]) == 0x02 }

func (p *Replay) tx(w, r []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if p.isStatus(w) {
		if p.next < len(p.s.Ops) && p.isStatus(p.s.Ops[p.next].W) {
			copy(r, p.s.Ops[p.next].R)
			p.next++
			return nil
		}
		if len(r) == 2 {
			r[0], r[1] = 0, p.logical(0x01)
		}
		return nil
	}
	for p.next < len(p.s.Ops) && p.isStatus(p.s.Ops[p.next].W) {
		p.next++
	}
	if p.next >= len(p.s.Ops) {
		p.err = fmt.Errorf("%w: transaction %d: % X", ErrReplayEnd, p.next, w)
		return p.err
	}
	op := p.s.Ops[p.next]
	if !bytes.Equal(op.W, w) || len(op.R) != len(r) {
		p.err = fmt.Errorf("pn532emu: replay: transaction %d: wrote % X (read %d), recorded % X (read %d)", p.next, w, len(r), []byte(op.W), len(op.R))
		return p.err
	}
	copy(r, op.R)
	p.next++
	return nil
}

type replayConn struct{ p *Replay }

func (c replayConn) String() string       { return "replay" }
func (c replayConn) Duplex() conn.Duplex  { return conn.Full }
func (c replayConn) Tx(w, r []byte) error { return c.p.tx(w, r) }
func (c replayConn) TxPackets(p []spi.Packet) error {
	return errors.New("pn532emu: replay: TxPackets is not recorded")
}
