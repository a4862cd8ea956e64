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

const usage = `usage: kioskctl [-socket PATH] COMMAND [ARGS]

commands:
  tap CHIP        put a card on the kiosk's simulated reader; prints the reply
  status          prints the kiosk's status
  identify        makes the kiosk blink and beep
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
	var req control.Request
	switch cmd {
	case "screens":
		return screens(rest, stdout, stderr)
	case "tap":
		if len(rest) != 1 {
			fmt.Fprintln(stderr, "kioskctl: tap takes one chip number, e.g. tap 04A1B2C3D4E5F6")
			return 2
		}
		req = control.Request{Op: "tap", ChipNumber: rest[0]}
	case "status", "identify":
		if len(rest) != 0 {
			fmt.Fprintf(stderr, "kioskctl: %s takes no arguments\n", cmd)
			return 2
		}
		req = control.Request{Op: cmd}
	default:
		fmt.Fprintf(stderr, "kioskctl: unknown command %q\n", cmd)
		fs.Usage()
		return 2
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
