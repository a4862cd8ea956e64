// Command pn532-smoke is a technician's bench tool for the kiosk's NFC
// reader: on a Raspberry Pi it initialises the PN532, prints its firmware
// version, then prints every card tapped until Ctrl-C.
//
// It prints card UIDs whole (kioskd never logs them unmasked): it is meant
// for the bench, to check a reader and identify test cards, not for a kiosk
// in service.
//
// Usage:
//
//	pn532-smoke [-spi /dev/spidev0.0] [-hz 1000000] [-irq GPIO25] [-reset GPIO24] [-record FILE] [-note TEXT] [-v]
//
// With -record FILE it records every SPI transaction (periph's
// spitest.Record) and writes them, with the taps it saw, as a session file
// (JSON). Copy the file into reader/pn532/testdata/sessions/ and the
// package's TestReplaySessions plays it back against the driver: a bench
// session on real hardware becomes a regression test. Record with the same
// -hz the tests use (1 MHz, the default).
//
// # Wiring (Raspberry Pi 40-pin header, SPI0 CE0)
//
//	PN532 module   Pi header pin   Pi signal
//	VCC            1               3.3 V
//	GND            6               ground
//	SCK            23              GPIO11 SPI0 SCLK
//	MOSI           19              GPIO10 SPI0 MOSI
//	MISO           21              GPIO9  SPI0 MISO
//	SS / NSS       24              GPIO8  SPI0 CE0  (/dev/spidev0.0)
//	IRQ            22              GPIO25           (-irq GPIO25, the default)
//	RSTPDN / RST   18              GPIO24           (-reset GPIO24, the default)
//
// Enable SPI (raspi-config, or dtparam=spi=on in config.txt). Lines are
// given by name and looked up on every GPIO chip, which works on every Pi
// (on a Pi 5 with an older kernel the header's lines are on gpiochip4, not
// gpiochip0); -irq gpiochip0:25 (chip:offset) binds one chip's offset.
//
// Select SPI mode on the module: SEL0 (I0) low and SEL1 (I1) high. On the
// common red Elechouse-style boards that is DIP switch 1 OFF and switch 2 ON;
// on the Waveshare PN532 HAT, jumpers I0 → L and I1 → H. Power-cycle the
// module after changing them: it reads them only at reset.
//
// With -irq "" the driver polls the status byte instead of waiting for the
// IRQ line (it also does so by itself, with a warning, when the line does
// not follow the chip: unwired, stuck); with -reset "" it cannot reset a
// chip that stopped answering. The PN532 wants LSB-first, which the Pi's SPI
// controller refuses, so the driver shifts mode 0 and reverses bits in
// software; the tool says so.
package main
