// Command kioskd is the kiosk daemon: reader → decision → durable queue →
// display and buzzer → MQTT. See the README for its configuration.
package main

import (
	"path/filepath"
	"strings"

	"github.com/uitpas/tap-kiosk/internal/kioskctl"

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
	// Installed as kioskctl too (a symlink): one binary on the kiosk.
	if strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe") == "kioskctl" {
		os.Exit(kioskctl.Main(os.Args[1:], os.Stdout, os.Stderr, version))
	}
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
		return exitConfig
	}
	log := slog.New(newLogHandler(stderr, logOpts{Level: parseLevel(cfg.Log.Level),
		Journal: journalStream(os.Getenv("JOURNAL_STREAM"), stderrID)}))
	wedge, err := parseWedge(os.Getenv(wedgeEnv))
	if err != nil {
		fmt.Fprintf(stderr, "kioskd: %v\n", err)
		return 2
	}
	notify, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("no systemd watchdog", "err", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	svc := &service{n: notify, log: log, now: time.Now, start: time.Now(), wedge: wedge, cfg: cfg}
	fails := startFailures{dir: os.Getenv("RUNTIME_DIRECTORY")}
	if i := strings.IndexByte(fails.dir, ':'); i >= 0 {
		fails.dir = fails.dir[:i] // several directories: the first is ours
	}
	k, err := kiosk.New(cfg, kiosk.Opts{Version: version, Logger: log,
		OnReady: func() { fails.ok(); svc.ready(ctx) },
		OnTick:  svc.tick,
	})
	if err != nil {
		return svc.cannotStart(ctx, fails, err)
	}
	svc.k = k
	err = k.Run(ctx)
	notify.Stopping()
	if err != nil {
		if !svc.readied {
			return svc.cannotStart(ctx, fails, err)
		}
		log.Error("stopped", "err", err)
		return exitFailed
	}
	log.Info("stopped")
	return 0
}
