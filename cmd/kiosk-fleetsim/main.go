// Command kiosk-fleetsim runs N simulated kiosks in one process against a
// real broker and the reference ingest, with optional chaos, then drains and
// reconciles every tap against the ledger. It prints one JSON summary line
// (its fields are described by -h). Exit 0 when every saved tap was booked
// exactly once, 1 when a tap was lost or booked twice, 2 for bad flags or a
// setup that failed before any tap, 3 when the run broke off after it began.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata"

	"github.com/uitpas/tap-kiosk/internal/fleetsim"
)

var version = "dev"

// Exit codes.
const (
	exitOK     = 0 // every saved tap booked exactly once
	exitLost   = 1 // a tap lost or booked twice
	exitSetup  = 2 // bad flags, or the run could not be set up: nothing measured
	exitBroken = 3 // the run broke off after it began: no summary
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// summaryHelp describes the summary's fields, in its order.
const summaryHelp = `The summary, one JSON line on stdout:
  kiosks          kiosks in the fleet
  taps            taps that got a decision from their kiosk
  saved           of them "saved": queued for central, so each must be booked exactly once
  alreadySaved    "already-saved": the kiosk's local history said the card saved already
  blocked         "blocked": a card of the hot list, refused at the kiosk
  retaps          a card again within the kiosk's debounce window: the same tap, answered again
  otherOutcomes   every other decision (unreadable-card, no-event, queue-full, storage-error)
  booked          ledger rows with status saved
  ledgerRows      every ledger row, also those central refused (maximum-reached for a card
                  saved at another kiosk already, passholder-not-found for unknown cards)
  lost            saved taps that are not in the ledger: must be 0
  duplicates      ledger rows beyond one per saved tap: an id or a (device, seq) booked
                  twice, or a row no tap of this run made: must be 0
  resultP50Ms     tap to the kiosk receiving central's Result, median, milliseconds
  resultP99Ms     the same, 99th percentile
  centralP50Ms    central's own share: the ingest's receipt of a checkin to its Result
  centralP99Ms    handed to the broker (queue, batch, commit), median and 99th percentile
  maxPending      most checkins waiting in all the kiosks' queues at once (every 250 ms)
  drainS          seconds from the end of tapping until every queue was empty
  recoverS        with -chaos-outage-at: seconds from the broker's return until the
                  backlog was down to about a second of taps (absent otherwise)
  processes       with -processes: the processes the kiosks ran in (counts summed;
                  percentiles, drainS and fleetUpS the worst process's)
  fleetUpS        seconds from the first kiosk's start until the whole fleet was up
                  (with -processes: every shard; they start tapping together then)
  rssMB           the process's resident memory with the fleet up (kiosks, broker
                  clients, ingest; the broker and PostgreSQL are other processes)
  kioskKB         resident memory per kiosk: what the process grew by while the fleet
                  started, divided by the kiosks
  ingestBatches   ledger transactions the ingests committed (absent in a shard: its
                  parent runs the ingests)
  ingestBatch     checkins per transaction, mean
  ingestLedgerS   seconds the ingests spent in the ledger (all transactions)
  ingestReceived  checkins the ingests received, republished ones included
  ingestReplays   of them answered from the ledger (republished while their first
                  answer was on its way, or after a reconnect)
  brokerRestarts  broker stops (restarts and the outage) that happened
  kioskKills      kiosks taken down
  ingestStops     times the ingest was stopped
  dir             with -dir: the run's own directory (queues, ledger, broker, logs)

Exit status: 0 every saved tap booked exactly once; 1 a tap lost or booked twice;
2 bad flags, or a setup error (directory, broker, ledger, ingest, kiosks) before
any tap; 3 the run broke off after it began.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiosk-fleetsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is one line below; -h prints the usage
	var o fleetsim.Opts
	fs.IntVar(&o.Kiosks, "kiosks", 50, "number of kiosks")
	fs.Float64Var(&o.Rate, "rate", 0.5, "taps per second per kiosk")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to tap")
	fs.StringVar(&o.Broker, "broker", "", "MQTT broker URL; empty starts one of our own: Mosquitto, or the embedded broker where none is installed (needed for -chaos-broker)")
	fs.StringVar(&o.Dir, "dir", "", "keep the state below this `directory` (made when missing): each run gets a fresh run-YYYYMMDDTHHMMSSZ subdirectory; empty: a temporary directory, removed")
	fs.StringVar(&o.DB, "db", "", "ledger: empty for SQLite in the run's directory, or postgres://… (an empty database)")
	fs.IntVar(&o.Ingests, "ingests", 1, "ingest instances sharing the load (shared subscription when > 1)")
	fs.IntVar(&o.IngestBatch, "ingest-batch", 0, "the ingests' most checkins per transaction (kiosk-ingest -batch; 0: its default)")
	fs.DurationVar(&o.IngestBatchWait, "ingest-batch-wait", 0, "how long the ingests' batches wait for more checkins (kiosk-ingest -batch-wait; 0: its default)")
	fs.IntVar(&o.Window, "window", 32, "checkins in flight per kiosk")
	fs.DurationVar(&o.RetryAfter, "retry-after", 10*time.Second, "a kiosk publishes a checkin again when its Result has not come after this")
	fs.DurationVar(&o.BrokerRestartEvery, "chaos-broker", 0, "restart the broker this often (0: never)")
	fs.DurationVar(&o.BrokerDown, "chaos-broker-down", 2*time.Second, "how long the broker stays down")
	fs.DurationVar(&o.BrokerOutageAt, "chaos-outage-at", 0, "one broker outage (of -chaos-broker-down) this long into the run; recoverS in the summary")
	fs.DurationVar(&o.KillEvery, "chaos-kill", 0, "take a random kiosk down this often (0: never)")
	fs.DurationVar(&o.KillDown, "chaos-kill-down", time.Second, "how long a killed kiosk stays down")
	fs.DurationVar(&o.IngestDownAt, "chaos-ingest-at", 0, "stop the ingest this long into the run")
	fs.DurationVar(&o.IngestDown, "chaos-ingest-down", 0, "for this long (0: never)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 3*time.Minute, "give up draining after this")
	fs.IntVar(&o.StartParallel, "start-parallel", 32, "kiosks started at once")
	fs.IntVar(&o.Processes, "processes", 1, "split the kiosks over this many processes (about 8 open files per kiosk; ulimit -n bounds one process), against this one's broker and ingest; no chaos")
	shardFirst := fs.Int("shard-first", -1, "internal: run as a shard of -processes, kiosks numbered from this")
	shardGate := fs.String("shard-gate", "", "internal: as a shard, start tapping when this directory's gate opens")
	shardNice := fs.Int("shard-nice", 10, "with -processes: the kiosks' processes run at this nice level, so that they yield the processors to central (0: as central)")
	seed := fs.Uint64("seed", 1, "random seed")
	verbose := fs.Bool("v", false, "log progress to stderr")
	kioskLogs := fs.Bool("kiosk-logs", false, "also log every kiosk's own messages to stderr (small fleets)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this `file` (with -processes each shard writes FILE.shard-N too)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, "usage: kiosk-fleetsim [flags]\n\n"+
				"Runs N simulated kiosks in one process against a broker and the reference ingest,\n"+
				"with optional chaos, then drains and reconciles every tap against the ledger.\n\n")
			fs.PrintDefaults()
			fmt.Fprint(stderr, "\n"+summaryHelp)
			return exitOK
		}
		fmt.Fprintf(stderr, "kiosk-fleetsim: %v (-h lists the flags)\n", err)
		return exitSetup
	}
	if *showVersion {
		fmt.Fprintln(stdout, "kiosk-fleetsim", version)
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kiosk-fleetsim: unexpected argument %q\n", fs.Arg(0))
		return exitSetup
	}
	if o.Kiosks < 1 || o.Rate <= 0 || o.Duration <= 0 {
		fmt.Fprintln(stderr, "kiosk-fleetsim: -kiosks, -rate and -duration must be positive")
		return exitSetup
	}
	o.Seed = *seed
	if *cpuProfile != "" {
		name := *cpuProfile
		if *shardFirst >= 0 {
			name = fmt.Sprintf("%s.shard-%d", name, *shardFirst)
		}
		f, err := os.Create(name)
		if err != nil {
			fmt.Fprintln(stderr, "kiosk-fleetsim:", err)
			return exitSetup
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "kiosk-fleetsim:", err)
			return exitSetup
		}
		defer pprof.StopCPUProfile()
	}
	if *verbose {
		o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if *shardFirst >= 0 {
		o.Shard = &fleetsim.Shard{First: *shardFirst, Gate: *shardGate}
	}
	o.Spawn = func(ctx context.Context, sh fleetsim.Opts) (fleetsim.Summary, error) {
		return spawnShard(ctx, sh, *shardNice, *verbose, *cpuProfile, stderr)
	}
	if *kioskLogs {
		o.KioskLogger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	sum, err := fleetsim.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "kiosk-fleetsim:", err)
		if _, ok := errors.AsType[*fleetsim.SetupError](err); ok {
			return exitSetup
		}
		return exitBroken
	}
	b, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(b))
	if sum.Lost != 0 || sum.Duplicates != 0 {
		return exitLost
	}
	return exitOK
}

// spawnShard runs one shard of a -processes run: this program again, with
// the shard's kiosks, the parent's broker and ledger, and no ingest of its
// own; its summary is its last line on stdout.
func spawnShard(ctx context.Context, o fleetsim.Opts, nice int, verbose bool, cpuProfile string, stderr io.Writer) (fleetsim.Summary, error) {
	exe, err := os.Executable()
	if err != nil {
		return fleetsim.Summary{}, fmt.Errorf("shard: %w", err)
	}
	args := []string{"-shard-first", fmt.Sprint(o.Shard.First), "-kiosks", fmt.Sprint(o.Kiosks),
		"-rate", fmt.Sprint(o.Rate), "-duration", o.Duration.String(), "-broker", o.Broker, "-db", o.DB,
		"-window", fmt.Sprint(o.Window), "-retry-after", o.RetryAfter.String(), "-seed", fmt.Sprint(o.Seed), "-dir", o.Dir,
		"-drain-timeout", o.DrainTimeout.String(), "-start-parallel", fmt.Sprint(o.StartParallel)}
	if o.Shard.Gate != "" {
		args = append(args, "-shard-gate", o.Shard.Gate)
	}
	if verbose {
		args = append(args, "-v")
	}
	if cpuProfile != "" {
		args = append(args, "-cpuprofile", cpuProfile)
	}
	// The simulated kiosks stand for machines of their own: on this one
	// they yield the processors to central (broker, ingest, PostgreSQL),
	// which would otherwise wait behind thousands of kiosks at every
	// round trip and be measured slower than it is. Started through
	// nice(1), so that every thread of the shard has the nice level from
	// its start: setpriority of a running Go process reaches its main
	// thread only, not the threads the runtime had started already.
	name := exe
	if nice > 0 {
		name, args = "nice", append([]string{"-n", fmt.Sprint(nice), exe}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, stderr
	runErr := cmd.Run()
	var sum fleetsim.Summary
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		return sum, fmt.Errorf("shard from kiosk %d: %v (summary %q: %v)", o.Shard.First, runErr, out.String(), err)
	}
	return sum, nil
}
