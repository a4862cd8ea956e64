package frame

import (
	"errors"
	"strconv"
)

// Command codes (PD0 of a host frame); a reply's code is the command's + 1.
const (
	CmdGetFirmwareVersion  byte = 0x02
	CmdSAMConfiguration    byte = 0x14
	CmdPowerDown           byte = 0x16
	CmdRFConfiguration     byte = 0x32
	CmdInListPassiveTarget byte = 0x4A
	CmdInRelease           byte = 0x52
)

// RFConfiguration items.
const (
	RFItemField      byte = 0x01
	RFItemMaxRetries byte = 0x05
)

// Reply errors.
var (
	// ErrReplyCode: the reply answers another command (a stale reply).
	ErrReplyCode = errors.New("frame: reply code does not match the command")
	// ErrReply: the reply's parameters do not parse.
	ErrReply = errors.New("frame: malformed reply")
)

// AppendGetFirmwareVersion appends GetFirmwareVersion (02).
func AppendGetFirmwareVersion(dst []byte) []byte { return append(dst, CmdGetFirmwareVersion) }

// AppendSAMConfiguration appends SAMConfiguration in normal mode (14 01 timeout irq):
// timeout is in 50 ms units (virtual card mode only); irq makes the chip
// drive P70_IRQ.
func AppendSAMConfiguration(dst []byte, timeout byte, irq bool) []byte {
	return append(dst, CmdSAMConfiguration, 0x01, timeout, b2b(irq))
}

// AppendRFField appends RFConfiguration item 1 (32 01 00|01): field off or on,
// AutoRFCA off.
func AppendRFField(dst []byte, on bool) []byte {
	return append(dst, CmdRFConfiguration, RFItemField, b2b(on))
}

// AppendMaxRetries appends RFConfiguration item 5, MaxRetries
// (32 05 MxRtyATR MxRtyPSL MxRtyPassiveActivation), UM0701 §7.3.1: how many
// times the chip retries ATR_REQ (NFC-DEP), PSL_REQ/PPS, and passive
// activation in InListPassiveTarget. For each, FF means forever (the
// power-on default of ATR and passive activation, which can block the chip
// until a card comes) and 00 one try: a poller sets finite values.
func AppendMaxRetries(dst []byte, atr, psl, passive byte) []byte {
	return append(dst, CmdRFConfiguration, RFItemMaxRetries, atr, psl, passive)
}

// AppendInListPassiveTarget appends InListPassiveTarget for ISO 14443 type A
// at 106 kbps (4A maxTg 00); maxTg is 1 or 2.
func AppendInListPassiveTarget(dst []byte, maxTg byte) []byte {
	return append(dst, CmdInListPassiveTarget, maxTg, 0x00)
}

// AppendInRelease appends InRelease (52 tg); tg 0 releases every target.
func AppendInRelease(dst []byte, tg byte) []byte { return append(dst, CmdInRelease, tg) }

// Params checks that reply (PD0…PDn of a PN532 frame) answers cmd and
// returns its parameters.
func Params(reply []byte, cmd byte) ([]byte, error) {
	if len(reply) == 0 || reply[0] != cmd+1 {
		return nil, ErrReplyCode
	}
	return reply[1:], nil
}

// Firmware is GetFirmwareVersion's answer.
type Firmware struct {
	IC, Ver, Rev, Support byte
}

// PN532IC is the IC byte a PN532 reports.
const PN532IC byte = 0x32

func (f Firmware) String() string {
	name := "PN5" + strconv.FormatUint(uint64(f.IC), 16)
	return name + " v" + strconv.Itoa(int(f.Ver)) + "." + strconv.Itoa(int(f.Rev)) +
		" support=0x" + strconv.FormatUint(uint64(f.Support), 16)
}

// ParseFirmware parses a GetFirmwareVersion reply (03 IC Ver Rev Support).
func ParseFirmware(reply []byte) (Firmware, error) {
	p, err := Params(reply, CmdGetFirmwareVersion)
	if err != nil {
		return Firmware{}, err
	}
	if len(p) != 4 {
		return Firmware{}, ErrReply
	}
	return Firmware{IC: p[0], Ver: p[1], Rev: p[2], Support: p[3]}, nil
}

// Target is one card from InListPassiveTarget at 106 kbps type A. Its slices
// alias the reply buffer.
type Target struct {
	Tg      byte
	SENSRes [2]byte // ATQA as the chip reports it
	SELRes  byte    // SAK; bit 0x20 means ISO 14443-4 (DESFire), with an ATS
	UID     []byte  // NFCID1: 4, 7 or 10 bytes
	ATS     []byte  // including TL; empty when the card sent none
}

// RandomID reports a 4-byte UID beginning 08: a random ID that changes on
// every activation (DESFire with random UID on), useless as a card number.
func (t Target) RandomID() bool { return len(t.UID) == 4 && t.UID[0] == 0x08 }

// Targets is InListPassiveTarget's answer: N cards (0, 1 or 2) in T.
type Targets struct {
	N int
	T [2]Target
}

// ParseInList parses an InListPassiveTarget reply for 106 kbps type A:
// 4B NbTg { Tg SENS_RES(2) SEL_RES NFCIDLen NFCID1… [ATS] }. Every target is
// parsed to the last byte; any inconsistency rejects the whole reply, so
// bytes of two cards can never mix.
func ParseInList(reply []byte) (Targets, error) {
	p, err := Params(reply, CmdInListPassiveTarget)
	if err != nil {
		return Targets{}, err
	}
	if len(p) < 1 || p[0] > 2 {
		return Targets{}, ErrReply
	}
	var r Targets
	r.N = int(p[0])
	p = p[1:]
	for i := 0; i < r.N; i++ {
		if len(p) < 5 {
			return Targets{}, ErrReply
		}
		t := Target{Tg: p[0], SENSRes: [2]byte{p[1], p[2]}, SELRes: p[3]}
		n := int(p[4])
		if n != 4 && n != 7 && n != 10 {
			return Targets{}, ErrReply
		}
		p = p[5:]
		if len(p) < n {
			return Targets{}, ErrReply
		}
		t.UID = p[:n:n]
		p = p[n:]
		if t.SELRes&0x20 != 0 && len(p) > 0 {
			tl := int(p[0])
			if tl < 1 || tl > len(p) {
				return Targets{}, ErrReply
			}
			t.ATS = p[:tl:tl]
			p = p[tl:]
		}
		r.T[i] = t
	}
	if len(p) != 0 {
		return Targets{}, ErrReply
	}
	return r, nil
}

func b2b(v bool) byte {
	if v {
		return 1
	}
	return 0
}
