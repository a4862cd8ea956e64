// Package pn532 drives an NXP PN532 NFC controller over SPI as the kiosk's
// card reader: it polls for ISO 14443-A cards (UiTPAS cards are MIFARE
// DESFire with 7-byte UIDs) and delivers each card that enters the field as a
// reader.Tap, and its own health as reader.Health.
//
// The frame codec lives in package frame; the emulator the tests (and the
// demo) run the driver against is package pn532emu; host wiring (spidev,
// GPIO character device) is package pn532hw.
//
// # What it does on the wire
//
//   - SPI mode 0, LSB first. The Raspberry Pi's controllers refuse LSB-first
//     (spidev answers EINVAL) and a periph port is connected only once (a
//     Connect refused on the mode counts), so by default (BitOrderAuto) the
//     driver connects in plain mode 0 and reverses every byte in software;
//     BitOrderHardware asks the controller for LSB-first instead. Each
//     transaction starts with 01
//     (data write), 02 (status read) or 03 (data read), and a reply is read
//     whole in one transaction, chip select held low throughout.
//   - Start-up: chip select held low for WakeHold to wake the chip; an ACK to
//     abort whatever a previous host left running and a drain of replies it
//     still holds; SAMConfiguration (normal mode, IRQ pin on), retried since
//     the first after wake-up can be lost; GetFirmwareVersion, which must say
//     PN532; RFConfiguration MaxRetries set finite (MxRtyATR 02, passive
//     activation Opts.MaxRetries); RF field off.
//   - A poll cycle: InListPassiveTarget (one target, 106 kbps type A; the
//     chip switches the field on itself), then RFConfiguration field off, so
//     a card resting on the reader is reset between cycles and the field is
//     off while the driver waits. A ready chip is signalled by a falling
//     edge of P70_IRQ; without an IRQ line the status byte is polled. A line
//     that does not follow the chip (stuck low, stuck high, unwired) is
//     found out against the status byte and given up for status polling,
//     with one warning.
//   - Recovery: no ACK within ACKTimeout (100 ms) → the command is sent
//     again, superseding the first; a stale frame (an ACK or a reply to an
//     earlier command) ahead of the awaited one → dropped; a bad checksum →
//     NACK and the reply is read again; a silent chip → re-initialisation with
//     doubling backoff, and a pulse on RSTPD_N every ResetAfter failures.
//     The core hears reader.Health Fault when a re-initialisation fails and
//     OK once one succeeds; the daemon never restarts for it.
//
// # References
//
//   - NXP PN532 User Manual UM0701-02: https://www.nxp.com/docs/en/user-guide/141520.pdf
//   - NXP PN532 data sheet: https://www.nxp.com/docs/en/nxp/data-sheets/PN532_C1.pdf
//   - Application note AN10609 (PN532 C106): https://www.nxp.com/docs/en/application-note/AN10609.pdf
package pn532
