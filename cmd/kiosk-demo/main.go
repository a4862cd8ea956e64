// Command kiosk-demo runs the whole product on a laptop with nothing but Go:
// an embedded MQTT broker on a free loopback port, the reference ingest, and
// one kiosk with a simulated reader and a terminal display. It prints the
// command that taps a card from a second terminal. Ctrl-C stops everything.
//
// On a terminal the kiosk's screen is redrawn in place at the top, as small
// as the terminal needs (an 80×24 one gets braille dots), with the tap
// command kept on screen underneath; written to a file or a pipe, screens
// are appended after a banner.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uitpas/tap-kiosk/display/blockterm"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/internal/embedbroker"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/provisioning"
)

var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kiosk-demo", flag.ContinueOnError)
	dir := fs.String("dir", "", "keep state (queue, ledger, logs) in this `directory` instead of a temporary one")
	readerDriver := fs.String("reader", "pn532-emulated", "reader driver: pn532-emulated (the real PN532 driver over its emulator) or sim")
	lang := fs.String("lang", "nl", "screen language: nl, fr, en")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: kiosk-demo [-dir DIR] [-reader sim|pn532-emulated] [-lang nl|fr|en]\n\n"+
			"Runs a broker, the reference ingest and one kiosk; tap from a second terminal.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("kiosk-demo", version)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := demoOpts{dir: *dir, reader: *readerDriver, lang: *lang, out: os.Stdout}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdout.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 && ws.Row > 0 {
		o.cols, o.rows = int(ws.Col), int(ws.Row)
	}
	if err := demo(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "kiosk-demo:", err)
		return 1
	}
	return 0
}

// demoOpts is one demo run.
type demoOpts struct {
	dir, reader, lang string
	out               io.Writer
	// cols, rows: out is a terminal of this size (0: not a terminal).
	cols, rows int
}

func demo(ctx context.Context, o demoOpts) error {
	dir, readerDriver, lang := o.dir, o.reader, o.lang
	keep := dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "kiosk-demo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	addr, err := embedbroker.FreeAddr()
	if err != nil {
		return err
	}
	broker, err := embedbroker.Start(addr, log.With("part", "broker"))
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer broker.Close()
	brokerURL := "tcp://" + addr

	lo := ingest.DefaultOpts()
	lo.EnrollUnknown = true
	lo.Logger = log.With("part", "ingest")
	ledger, err := ingest.Open(filepath.Join(dir, "ledger.db"), lo)
	if err != nil {
		return err
	}
	defer ledger.Close()
	// Central's decision that the demo kiosk runs the demo event, as a
	// config push records it in a fleet: the ingest books by it.
	if _, err := ledger.AssignEvent(ctx, "kiosk-demo-01", "balie-demo",
		ingest.Event{ID: "evt-demo", Points: 1, Period: "DAY", Volume: 1}, time.Now().Add(-time.Minute)); err != nil {
		return err
	}
	svc, err := ingest.New(ledger, ingest.ServiceOpts{Broker: brokerURL, ClientID: "kiosk-ingest-demo",
		Logger: log.With("part", "ingest")})
	if err != nil {
		return err
	}

	socket := filepath.Join(dir, "control.sock")
	cfg, err := provisioning.Parse("demo", []byte(fmt.Sprintf(`
device_id = "kiosk-demo-01"
state_dir = %q

[event]
id = "evt-demo"
title = "Bib Geel – leesclub"
counter_id = "balie-demo"
points = 1
period = "DAY"
volume = 1
checkin_code = "LGIWNWB"

[reader]
driver = %q

[display]
driver = "terminal"
lang = %q

[control]
socket = %q

[mqtt]
broker = %q
allow_insecure = true
`, filepath.Join(dir, "kiosk"), readerDriver, lang, socket, brokerURL)))
	if err != nil {
		return err
	}
	ko := kiosk.Opts{Version: version, Logger: log.With("part", "kioskd"), Stdout: o.out}
	if o.rows > 0 {
		// A terminal of its own: the screen redrawn in place, how to tap under it.
		bo := blockterm.Fit(blockterm.Opts{Width: cfg.Display.Width, Height: cfg.Display.Height, InPlace: true,
			Footer: footer(socket, dir)}, o.cols, o.rows)
		t, err := blockterm.New(o.out, &bo)
		if err != nil {
			return err
		}
		ko.Display = t
	}
	ready := make(chan struct{})
	ko.OnReady = func() { close(ready) }
	k, err := kiosk.New(cfg, ko)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for _, f := range []func(context.Context) error{svc.Run, k.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- err
				stop()
			}
		}()
	}
	select {
	case <-ready:
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("kiosk did not become ready within 10s")
	}
	if o.rows == 0 {
		banner(o.out, brokerURL, socket, dir, keep)
	}
	<-ctx.Done()
	fmt.Fprintln(o.out, "\nstopping…")
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return nil
}

// kioskctl is how to run kioskctl from here.
func kioskctl() string {
	if _, err := os.Stat("bin/kioskctl"); err != nil {
		return "go run ./cmd/kioskctl"
	}
	return "bin/kioskctl"
}

// tapCommand taps the demo card.
func tapCommand(socket string) string {
	return kioskctl() + " -socket " + socket + " tap 04A1B2C3D4E5F6"
}

// footer stays under the screen on a terminal: the tap command on a line
// of its own (in /tmp it fits 80 columns), so that it can be copied.
func footer(socket, dir string) string {
	return "Tap from another terminal; again after 3 s it is already saved. Ctrl-C stops.\n" +
		tapCommand(socket) + "\n" +
		"Logs: " + filepath.Join(dir, "demo.log") + "\n"
}

func banner(w io.Writer, broker, socket, dir string, keep bool) {
	ctl := kioskctl()
	fmt.Fprintf(w, `
UiTPAS tap kiosk demo — broker %s, reference ingest, kiosk "kiosk-demo-01"

Tap a card from a second terminal:

    %s

Tap it again after 3 s for "punt al gespaard" (within 3 s it is the same tap);
try 08A1B2C3 (a random ID) or any other 7-byte number.
Status:  %s -socket %s status
Logs:    %s
`, broker, tapCommand(socket), ctl, socket, filepath.Join(dir, "demo.log"))
	if keep {
		fmt.Fprintf(w, "Ledger:  go run ./cmd/kiosk-ingest ledger -db %s\n", filepath.Join(dir, "ledger.db"))
	}
	fmt.Fprintln(w, "Ctrl-C stops everything.")
}
