// Command kiosk-ingest is the reference central side of the kiosk MQTT
// contract: it answers every kiosk's checkins from a ledger in SQLite or
// PostgreSQL. Several instances on one PostgreSQL ledger can share the load
// through an MQTT shared subscription (-share GROUP, distinct -client-id).
//
//	kiosk-ingest -broker URL -db FILE|postgres://… [-topic-prefix P] [-enroll-unknown] [flags]
//	kiosk-ingest ledger -db FILE|postgres://… [-full-chips]
//	kiosk-ingest report -db FILE|postgres://… -by counter|event|device|day [flags]
//	kiosk-ingest fleet -db FILE|postgres://… [-json] [threshold flags]
//	kiosk-ingest assign -db FILE|postgres://… -config-pub FILE [-device ID] CONFIG.json
//	kiosk-ingest assignments -db FILE|postgres://… [-device ID] [-json]
//
// The wiring lives here; the logic is in package ingest.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/internal/flagargs"
	"github.com/uitpas/tap-kiosk/internal/journallog"
	"github.com/uitpas/tap-kiosk/protocol"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const name = "kiosk-ingest"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a bad command line: exit 2 with one line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// run is the whole program without the process around it; it returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	if len(args) > 0 && args[0] == "ledger" {
		err = runLedger(ctx, args[1:], stdout)
	} else if len(args) > 0 && args[0] == "report" {
		err = runReport(ctx, args[1:], stdout)
	} else if len(args) > 0 && args[0] == "fleet" {
		err = runFleet(ctx, args[1:], stdout)
	} else if len(args) > 0 && args[0] == "assign" {
		err = runAssign(ctx, args[1:], stdout) // assign.go
	} else if len(args) > 0 && args[0] == "assignments" {
		err = runAssignments(ctx, args[1:], stdout)
	} else {
		err = serve(ctx, args, stdout, stderr)
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n", name, ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type config struct {
	broker, db, prefix, clientID, share, sync, logLevel string
	tlsCA, tlsCert, tlsKey                              string
	enroll, showVersion                                 bool
	events, passholders, blocked                        multi
	defPeriod                                           string
	defVolume, defPoints, batch                         int
	batchWait                                           time.Duration
}

func newFlagSet(cmd string, stdout io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by run
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (see -h)", pos[0])
	}
	return nil
}

// parseArgs parses args with fs, flags before and after the positional
// arguments, and returns those.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := flagargs.Parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, usagef("%v (see -h)", err)
	}
	return pos, err
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet(name, stdout, `Usage:
  kiosk-ingest -broker URL -db FILE|postgres://… [-topic-prefix P] [-enroll-unknown] [flags]
  kiosk-ingest ledger -db FILE|postgres://… [-full-chips]
  kiosk-ingest report -db FILE|postgres://… -by counter|event|device|day [flags]
  kiosk-ingest fleet -db FILE|postgres://… [-json] [threshold flags]

Serves the kiosk MQTT contract: one Result per checkin id, the same Result on
replay, the event's check-in constraint enforced per (chip, event, period).

To scale out, run several instances on one PostgreSQL ledger with the same
-share GROUP and distinct -client-id: the broker splits the checkins among
them, and the ledger keeps the guarantees across instances.

Flags:
`)
	fs.StringVar(&c.broker, "broker", "", "MQTT broker `URL` (ssl://host:8883, or tcp:// for tests and demos)")
	fs.StringVar(&c.db, "db", "", "ledger: a SQLite `FILE` (created if missing) or a postgres://user@host/db URL (the database must exist;\n"+
		"tables go in its search_path schema; give the password in PGPASSWORD or ~/.pgpass, not the URL)")
	fs.StringVar(&c.prefix, "topic-prefix", protocol.DefaultPrefix, "topic `prefix`")
	fs.BoolVar(&c.enroll, "enroll-unknown", false, "book unknown chips as new passholders and create unknown events with the defaults (demo)")
	fs.Var(&c.events, "event", "upsert an event at start: `ID:PERIOD:VOLUME:POINTS[@FROM/UNTIL]` (RFC 3339 bounds, either may be empty); repeatable")
	fs.StringVar(&c.defPeriod, "default-period", protocol.PeriodDay, "constraint `period` of auto-created events: ABSOLUTE|DAY|WEEK|MONTH|QUARTER|YEAR")
	fs.IntVar(&c.defVolume, "default-volume", 1, "check-ins per period of auto-created events")
	fs.IntVar(&c.defPoints, "default-points", 1, "points of auto-created events")
	fs.Var(&c.passholders, "passholder", "enroll `CHIP` as a passholder at start; repeatable")
	fs.Var(&c.blocked, "block", "block `CHIP` at start; repeatable")
	fs.StringVar(&c.clientID, "client-id", "kiosk-ingest", "MQTT client `id`; keep it stable: the broker queues checkins for it while it is down")
	fs.StringVar(&c.share, "share", "", "subscribe as shared subscription `group` ($share/GROUP/…) to split load over several ingests")
	fs.IntVar(&c.batch, "batch", 256, "most checkins per ledger transaction")
	fs.DurationVar(&c.batchWait, "batch-wait", 2*time.Millisecond, "how long a batch waits for more checkins")
	fs.StringVar(&c.sync, "synchronous", "FULL", "FULL (each batch on disk) or NORMAL (SQLite's pragma; on PostgreSQL synchronous_commit=off)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "CA certificate `file` (PEM) for ssl:// brokers; default: system roots")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "client certificate `file` (PEM)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "client key `file` (PEM)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug|info|warn|error")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	fleetOn := fleetFlag(fs)       // fleet.go
	httpOn := httpFlag(fs)         // http.go
	assignOn := addAssignFlags(fs) // assign.go
	if err := parse(fs, args); err != nil {
		return err
	}
	if c.showVersion {
		fmt.Fprintln(stdout, name, version)
		return nil
	}
	lo, so, events, err := c.check()
	if err != nil {
		return err
	}
	assigns, err := assignOn.apply(&lo, &so)
	if err != nil {
		return err
	}
	log := slog.New(journallog.New(stderr, journallog.Opts{Level: levelOf(c.logLevel), Journal: journal(stderr)}))
	sd, err := newNotifier(log) // systemd.go
	if err != nil {
		return err
	}
	so.OnTick = sd.tick
	lo.Logger = log
	so.Logger = log

	l, err := ingest.Open(c.db, lo)
	if err != nil {
		return err
	}
	defer l.Close()
	for _, e := range events {
		if err := l.UpsertEvent(ctx, e); err != nil {
			return err
		}
	}
	for _, a := range assigns {
		if _, err := l.AssignEvent(ctx, a.DeviceID, "", a.Event, time.Now()); err != nil {
			return err
		}
	}
	if so.ConfigKey == nil && !c.enroll {
		log.Warn("no -config-pub: configs pushed to the kiosks are not recorded, and a checkin books only for an event " +
			"assigned with -assign or `kiosk-ingest assign`")
	}
	for _, chip := range c.passholders {
		if err := l.Enroll(ctx, chip); err != nil {
			return err
		}
	}
	for _, chip := range c.blocked {
		if err := l.SetBlocked(ctx, chip, true); err != nil {
			return err
		}
	}
	stopFleet, err := startFleet(ctx, *fleetOn, l, log, &so) // fleet.go
	if err != nil {
		return err
	}
	defer stopFleet()
	web, err := httpOn.open(ctx, *fleetOn, l, log, &so) // http.go; nil without -http
	if err != nil {
		return err
	}
	svc, err := ingest.New(l, so)
	if err != nil {
		web.closeListener()
		return err
	}
	defer web.serve(ctx, svc)()
	log.Info("kiosk-ingest starting", "version", version, "broker", c.broker, "ledger", l.String(),
		"prefix", c.prefix, "share", c.share, "enrollUnknown", c.enroll, "events", len(events),
		"assignmentsFromConfigs", so.ConfigKey != nil)
	defer sd.watch(ctx, svc, c.broker)()
	return svc.Run(ctx)
}

// check validates the flags and turns them into options.
func (c *config) check() (ingest.Opts, ingest.ServiceOpts, []ingest.Event, error) {
	var lo ingest.Opts
	var so ingest.ServiceOpts
	switch {
	case c.broker == "":
		return lo, so, nil, usagef("-broker is required (see -h)")
	case c.db == "":
		return lo, so, nil, usagef("-db is required (see -h)")
	case c.prefix == "" || strings.ContainsAny(c.prefix, "+#") || strings.HasSuffix(c.prefix, "/") || strings.HasPrefix(c.prefix, "/"):
		return lo, so, nil, usagef("-topic-prefix %q: want a topic without wildcards or outer slashes", c.prefix)
	case !protocol.ValidPeriod(strings.ToUpper(c.defPeriod)):
		return lo, so, nil, usagef("-default-period %q: want ABSOLUTE, DAY, WEEK, MONTH, QUARTER or YEAR", c.defPeriod)
	case c.defVolume < 1:
		return lo, so, nil, usagef("-default-volume %d: want at least 1", c.defVolume)
	case c.defPoints < 0:
		return lo, so, nil, usagef("-default-points %d: want 0 or more", c.defPoints)
	case c.batch < 1:
		return lo, so, nil, usagef("-batch %d: want at least 1", c.batch)
	case c.batchWait < 0:
		return lo, so, nil, usagef("-batch-wait %v: want 0 or more", c.batchWait)
	case strings.ToUpper(c.sync) != "FULL" && strings.ToUpper(c.sync) != "NORMAL":
		return lo, so, nil, usagef("-synchronous %q: want FULL or NORMAL", c.sync)
	case levelOf(c.logLevel) == nil:
		return lo, so, nil, usagef("-log-level %q: want debug, info, warn or error", c.logLevel)
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return lo, so, nil, usagef("-tls-cert and -tls-key go together")
	}
	var events []ingest.Event
	for _, s := range c.events {
		e, err := ingest.ParseEvent(s)
		if err != nil {
			return lo, so, nil, usagef("-event %q: want ID:PERIOD:VOLUME:POINTS[@FROM/UNTIL] with a valid period, volume ≥ 1, points ≥ 0", s)
		}
		events = append(events, e)
	}
	for _, list := range []struct {
		flag  string
		chips []string
	}{{"-passholder", c.passholders}, {"-block", c.blocked}} {
		for _, chip := range list.chips {
			if err := protocol.CheckChip(chip); err != nil {
				return lo, so, nil, usagef("%s %q: want an upper-case hex UID of 8, 14 or 20 characters, not a random 08… UID", list.flag, chip)
			}
		}
	}
	lo = ingest.DefaultOpts()
	lo.EnrollUnknown = c.enroll
	lo.Default = ingest.Event{Period: strings.ToUpper(c.defPeriod), Volume: c.defVolume, Points: c.defPoints}
	lo.Synchronous = strings.ToUpper(c.sync)
	so = ingest.ServiceOpts{Broker: c.broker, Prefix: c.prefix, ClientID: c.clientID, SharedGroup: c.share,
		BatchSize: c.batch, BatchWait: c.batchWait, Clock: clock.Real{}}
	if c.batchWait == 0 {
		so.BatchWait = -1 // no waiting
	}
	if strings.ContainsAny(c.share, "+#/") {
		return lo, so, nil, usagef("-share %q: a group name has no /, + or #", c.share)
	}
	if err := so.Check(); err != nil {
		return lo, so, nil, usagef("-%v", strings.TrimSuffix(strings.TrimPrefix(err.Error(), "ingest: "), ": "+ingest.ErrInvalid.Error()))
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return lo, so, nil, err
	}
	so.TLS = tc
	return lo, so, events, nil
}

func (c *config) tlsConfig() (*tls.Config, error) {
	if c.tlsCA == "" && c.tlsCert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, usagef("-tls-ca: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("-tls-ca %s: no PEM certificate in it", c.tlsCA)
		}
	}
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, usagef("-tls-cert %s / -tls-key %s: %v", c.tlsCert, c.tlsKey, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func levelOf(s string) *slog.LevelVar {
	v := new(slog.LevelVar)
	switch strings.ToLower(s) {
	case "debug":
		v.Set(slog.LevelDebug)
	case "info":
		v.Set(slog.LevelInfo)
	case "warn":
		v.Set(slog.LevelWarn)
	case "error":
		v.Set(slog.LevelError)
	default:
		return nil
	}
	return v
}
