// Command kiosk-fleetsim runs N simulated kiosks in one process against a
// real broker and the reference ingest, with optional chaos, then drains and
// reconciles every tap against the ledger. It prints one JSON summary line:
// taps, saved, alreadySaved, booked, lost, duplicates, resultP50Ms,
// resultP99Ms, maxPending (and more). Exit 1 when a tap was lost or booked
// twice.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata"

	"github.com/uitpas/tap-kiosk/internal/fleetsim"
)

var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kiosk-fleetsim", flag.ContinueOnError)
	var o fleetsim.Opts
	fs.IntVar(&o.Kiosks, "kiosks", 50, "number of kiosks")
	fs.Float64Var(&o.Rate, "rate", 0.5, "taps per second per kiosk")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to tap")
	fs.StringVar(&o.Broker, "broker", "", "MQTT broker URL; empty starts a Mosquitto of our own (needed for -chaos-broker)")
	fs.StringVar(&o.Dir, "dir", "", "state directory (queues, ledger, broker); empty: temporary")
	fs.StringVar(&o.DB, "db", "", "ledger: empty for SQLite in -dir, or postgres://…")
	fs.IntVar(&o.Ingests, "ingests", 1, "ingest instances sharing the load (shared subscription when > 1)")
	fs.IntVar(&o.Window, "window", 32, "checkins in flight per kiosk")
	fs.DurationVar(&o.BrokerRestartEvery, "chaos-broker", 0, "restart the broker this often (0: never)")
	fs.DurationVar(&o.BrokerDown, "chaos-broker-down", 2*time.Second, "how long the broker stays down")
	fs.DurationVar(&o.BrokerOutageAt, "chaos-outage-at", 0, "one broker outage (of -chaos-broker-down) this long into the run; recoverS in the summary")
	fs.DurationVar(&o.KillEvery, "chaos-kill", 0, "take a random kiosk down this often (0: never)")
	fs.DurationVar(&o.KillDown, "chaos-kill-down", time.Second, "how long a killed kiosk stays down")
	fs.DurationVar(&o.IngestDownAt, "chaos-ingest-at", 0, "stop the ingest this long into the run")
	fs.DurationVar(&o.IngestDown, "chaos-ingest-down", 0, "for this long (0: never)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 3*time.Minute, "give up draining after this")
	seed := fs.Uint64("seed", 1, "random seed")
	verbose := fs.Bool("v", false, "log progress to stderr")
	kioskLogs := fs.Bool("kiosk-logs", false, "also log every kiosk's own messages to stderr (small fleets)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("kiosk-fleetsim", version)
		return 0
	}
	if o.Kiosks < 1 || o.Rate <= 0 || o.Duration <= 0 {
		fmt.Fprintln(os.Stderr, "kiosk-fleetsim: -kiosks, -rate and -duration must be positive")
		return 2
	}
	o.Seed = *seed
	if *verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if *kioskLogs {
		o.KioskLogger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := fleetsim.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiosk-fleetsim:", err)
		return 1
	}
	b, _ := json.Marshal(sum)
	fmt.Println(string(b))
	if sum.Lost != 0 || sum.Duplicates != 0 {
		return 1
	}
	return 0
}
