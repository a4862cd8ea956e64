// Package kioskctl is the technician's tool: it talks to a running kioskd
// over its control socket, provisions kiosks and renders screens. It is a
// package so that one binary can be both kioskd and kioskctl (a symlink named
// kioskctl runs Main): on the kiosk one Go binary instead of two halves the
// package.
package kioskctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/uitpas/tap-kiosk/kiosk/control"
)

// Main runs kioskctl with args (without the program name) and returns the
// exit code: 0 done, 1 failed, 2 bad usage.
func Main(args []string, stdout, stderr io.Writer, version string) int {
	return run(args, stdout, stderr, version)
}

const usage = `usage: kioskctl [-socket PATH] [-timeout D] COMMAND [ARGS]

on the kiosk, through kioskd's control socket:
  tap CHIP        put a card on the kiosk's simulated or emulated reader; prints the reply
  status          prints the kiosk's status
  identify        makes the kiosk blink and beep for 10 s
  reload          takes a provisioning bundle written to the state directory
  queue recover   after kioskd set an unusable queue aside: salvages its readable
                  checkins into the fresh queue and takes taps again
  queue reset [-force]
                  the same, giving the set-aside checkins up (says how many;
                  without -force only says)
  screens -out DIR [-size 128x64] [-scale 4]
                  renders every screen in every language to PNG files in DIR,
                  plus contact-sheet.png
`

func run(args []string, stdout, stderr io.Writer, version string) int {
	fs := flag.NewFlagSet("kioskctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "/run/kioskd/control.sock", "kioskd's control `socket`")
	showVersion := fs.Bool("version", false, "print the version and exit")
	timeout := fs.Duration("timeout", 15*time.Second, "how long to wait for kioskd")
	fs.Usage = func() { fmt.Fprint(stderr, usage, provisioningUsage, "\nflags:\n"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "kioskctl", version)
		return 0
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if _, ok := provisioningCommands[cmd]; ok {
		e := env{stdout: stdout, stderr: stderr, timeout: *timeout, now: time.Now}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "socket" {
				e.socket = *socket
			}
		})
		return runProvisioning(cmd, e, rest)
	}
	if cmd == "screens" {
		return screens(rest, stdout, stderr)
	}
	req, code := socketRequest(cmd, rest, stderr)
	if code >= 0 {
		if code == 2 && req.Op == "" {
			fs.Usage()
		}
		return code
	}
	line, err := control.Call(ctx, *socket, req)
	if err != nil {
		fmt.Fprintf(stderr, "kioskctl: %v (is kioskd running with control.socket = %q?)\n", err, *socket)
		return 1
	}
	fmt.Fprintln(stdout, string(line))
	var reply struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal(line, &reply) != nil || !reply.OK {
		return 1
	}
	return 0
}

// socketCommands are the commands answered by kioskd over its socket, with
// their one-line help.
var socketCommands = map[string]string{
	"tap":      "tap CHIP: puts a card with this UID (hex) on the kiosk's simulated or emulated reader",
	"status":   "status: prints the kiosk's status as one JSON line",
	"identify": "identify: makes the kiosk blink and beep for 10 s",
	"reload":   "reload: takes a provisioning bundle written to the state directory",
	"queue":    "queue recover | queue reset [-force]: after kioskd set an unusable queue aside, salvage its checkins or give them up",
}

// socketRequest turns a command line into a socket request. code is -1 when
// the request is to be sent, else the exit code (0 after -h, 2 for bad
// usage, with req.Op empty for an unknown command).
func socketRequest(cmd string, args []string, stderr io.Writer) (req control.Request, code int) {
	help, ok := socketCommands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "kioskctl: unknown command %q\n", cmd)
		return control.Request{}, 2
	}
	if cmd == "queue" {
		if len(args) == 0 || (args[0] != "recover" && args[0] != "reset") {
			if len(args) == 0 || args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
				fmt.Fprintf(stderr, "kioskctl: %s\n", help)
				return control.Request{Op: "queue"}, 2
			}
			fmt.Fprintf(stderr, "usage: kioskctl %s\n", help)
			return control.Request{Op: "queue"}, 0
		}
		cmd, args = "queue "+args[0], args[1:]
		help = map[string]string{
			"queue recover": "queue recover: salvages every readable checkin of the set-aside queue into the fresh one; taps are taken again",
			"queue reset":   "queue reset [-force]: gives the set-aside queue's checkins up (says how many); taps are taken again",
		}[cmd]
	}
	fs := flag.NewFlagSet("kioskctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kioskctl [-socket PATH] %s\n", help)
		fs.PrintDefaults()
	}
	force := false
	if cmd == "queue reset" {
		fs.BoolVar(&force, "force", false, "give the pending checkins up (without it, only says how many)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return control.Request{Op: cmd}, 0
		}
		return control.Request{Op: cmd}, 2
	}
	rest := fs.Args()
	switch cmd {
	case "tap":
		if len(rest) != 1 {
			fmt.Fprintln(stderr, "kioskctl: tap takes one chip number, e.g. tap 04A1B2C3D4E5F6")
			return control.Request{Op: cmd}, 2
		}
		return control.Request{Op: "tap", ChipNumber: rest[0]}, -1
	}
	if len(rest) != 0 {
		fmt.Fprintf(stderr, "kioskctl: %s takes no arguments\n", cmd)
		return control.Request{Op: cmd}, 2
	}
	switch cmd {
	case "queue recover":
		return control.Request{Op: "queue-recover"}, -1
	case "queue reset":
		return control.Request{Op: "queue-reset", Force: force}, -1
	}
	return control.Request{Op: cmd}, -1
}
