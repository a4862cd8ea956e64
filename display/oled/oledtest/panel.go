// Package oledtest simulates an SSD1306 on I²C for tests: it keeps the panel
// RAM that the commands and data written to it produce, counts bus bytes,
// and can fail or stall on demand. Tests compare its RAM with the renderer's
// image to prove what a passholder would see.
package oledtest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
)

// Panel is a simulated 128×64 SSD1306 behind an i2c.Bus. The zero value is
// ready.
type Panel struct {
	mu       sync.Mutex
	ram      [1024]byte
	page     int
	col      int
	contrast []byte
	inits    int
	bytes    int // including one address byte per transaction
	txs      int
	fail     bool
	stall    chan struct{} // when set, data writes wait on it
	perByte  time.Duration // simulated bus time per byte
}

// argc is how many argument bytes follow each multi-byte command.
var argc = map[byte]int{0x81: 1, 0xD3: 1, 0xDA: 1, 0xD5: 1, 0x8D: 1, 0xD9: 1, 0xDB: 1, 0xA8: 1, 0x20: 1, 0x21: 2, 0x22: 2}

func (p *Panel) String() string { return "oledtest.Panel" }

// SetSpeed accepts any speed.
func (p *Panel) SetSpeed(physic.Frequency) error { return nil }

// Tx interprets one I²C write: a command stream (control byte 0x00) or
// display data (0x40).
func (p *Panel) Tx(addr uint16, w, r []byte) error {
	p.mu.Lock()
	stall, perByte := p.stall, p.perByte
	p.mu.Unlock()
	if stall != nil && len(w) > 0 && w[0] == 0x40 {
		<-stall
	}
	if perByte > 0 {
		time.Sleep(time.Duration(1+len(w)) * perByte)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("oledtest: no ACK")
	}
	p.bytes += 1 + len(w)
	p.txs++
	if len(w) == 0 {
		return nil
	}
	switch w[0] {
	case 0x00:
		cmds := w[1:]
		for i := 0; i < len(cmds); i++ {
			c := cmds[i]
			switch {
			case c == 0xAE && i == 0 && len(cmds) > 10:
				p.inits++
			case c == 0x81 && i+1 < len(cmds):
				p.contrast = append(p.contrast, cmds[i+1])
			case c >= 0xB0 && c <= 0xB7:
				p.page = int(c - 0xB0)
			case c <= 0x0F:
				p.col = p.col&0xF0 | int(c)
			case c >= 0x10 && c <= 0x1F:
				p.col = p.col&0x0F | int(c-0x10)<<4
			}
			i += argc[c]
		}
	case 0x40:
		for _, b := range w[1:] {
			p.ram[p.page*128+p.col] = b
			if p.col++; p.col == 128 {
				p.col, p.page = 0, (p.page+1)%8
			}
		}
	default:
		return fmt.Errorf("oledtest: control byte %#x", w[0])
	}
	return nil
}

// Shows reports whether the panel RAM equals want (1024 bytes, the
// SSD1306's page layout, as image1bit.VerticalLSB.Pix).
func (p *Panel) Shows(want []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Equal(p.ram[:], want)
}

// SetFail makes every transaction fail (a panel without power or ACK).
func (p *Panel) SetFail(fail bool) {
	p.mu.Lock()
	p.fail = fail
	p.mu.Unlock()
}

// SetStall makes data writes wait until ch is closed (nil: no stall).
func (p *Panel) SetStall(ch chan struct{}) {
	p.mu.Lock()
	p.stall = ch
	p.mu.Unlock()
}

// SetBusHz makes each transaction take as long as its bytes would on a
// real bus at hz (9 clocks a byte); 0 is instant.
func (p *Panel) SetBusHz(hz int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hz <= 0 {
		p.perByte = 0
		return
	}
	p.perByte = 9 * time.Second / time.Duration(hz)
}

// ClearRAM forgets the picture, as a power loss does.
func (p *Panel) ClearRAM() {
	p.mu.Lock()
	p.ram = [1024]byte{}
	p.mu.Unlock()
}

// Inits counts full initialisation sequences received.
func (p *Panel) Inits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inits
}

// Contrasts lists every contrast value set, in order.
func (p *Panel) Contrasts() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.contrast...)
}

// Counts returns bytes (one address byte per transaction included) and
// transactions since the last ResetCounts.
func (p *Panel) Counts() (bytes, txs int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes, p.txs
}

// ResetCounts zeroes the byte and transaction counters.
func (p *Panel) ResetCounts() {
	p.mu.Lock()
	p.bytes, p.txs = 0, 0
	p.mu.Unlock()
}
