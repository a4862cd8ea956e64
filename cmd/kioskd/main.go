// Command kioskd is the kiosk daemon: reader → decision → durable queue →
// display and buzzer → MQTT. See the README for its configuration.
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
	"syscall"
	"time"
	_ "time/tzdata" // a kiosk image may lack /usr/share/zoneinfo; periods need Brussels

	"github.com/uitpas/tap-kiosk/internal/sdnotify"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/provisioning"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kioskd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/kioskd/kioskd.toml", "configuration `file`")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kioskd [-config FILE] [-version]\n\nThe UiTPAS tap kiosk daemon.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kioskd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Println("kioskd", version)
		return 0
	}
	cfg, err := provisioning.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "kioskd: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.Log.Level)
	notify := sdnotify.FromEnv()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	k, err := kiosk.New(cfg, kiosk.Opts{Version: version, Logger: log,
		OnReady: func() { notify.Send("READY=1\nSTATUS=ready") },
		OnTick:  func() { notify.Watchdog(time.Now()) },
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	err = k.Run(ctx)
	notify.Send("STOPPING=1")
	if err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
