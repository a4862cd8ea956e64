package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// assignFlags are the serve flags of the assignment and date rules.
type assignFlags struct {
	configPub string
	assign    multi
	bounds    ingest.Opts // MaxAge, Skew, AssignMargin, Handover
}

func addAssignFlags(fs *flag.FlagSet) *assignFlags {
	a := &assignFlags{}
	d := ingest.DefaultOpts()
	fs.StringVar(&a.configPub, "config-pub", "", "the fleet's config-signing public key `file` (config.pub from `kioskctl ca init`): record every\n"+
		"Config published with it on P/+/config as its device's assignment (what the ingest books by)")
	fs.Var(&a.assign, "assign", "assign an event to a device at start, issued now: `DEVICE=ID:PERIOD:VOLUME:POINTS[@FROM/UNTIL]`; repeatable\n"+
		"(demos and tests; in a fleet, `kioskctl config push` assigns)")
	fs.DurationVar(&a.bounds.MaxAge, "max-age", d.MaxAge, "refuse (checkin-not-allowed) a checkin dated longer than this before its receipt")
	fs.DurationVar(&a.bounds.Skew, "clock-skew", d.Skew, "refuse a synced tappedAt later than its receipt by more than this")
	fs.DurationVar(&a.bounds.AssignMargin, "assign-margin", d.AssignMargin, "how long before an assignment was issued a tap may be dated and still book under it")
	fs.DurationVar(&a.bounds.Handover, "assign-handover", d.Handover, "how long after a device's next assignment was issued its previous one still books\n"+
		"(a kiosk offline at the push learns it late)")
	return a
}

// apply puts the flags into the options; it returns the -assign
// assignments to record at start (without serial: AssignEvent numbers them).
func (a *assignFlags) apply(lo *ingest.Opts, so *ingest.ServiceOpts) ([]ingest.Assignment, error) {
	for _, b := range []struct {
		name string
		v    time.Duration
	}{{"max-age", a.bounds.MaxAge}, {"clock-skew", a.bounds.Skew}, {"assign-margin", a.bounds.AssignMargin}, {"assign-handover", a.bounds.Handover}} {
		if b.v <= 0 {
			return nil, usagef("-%s %v: want a positive duration", b.name, b.v)
		}
	}
	lo.MaxAge, lo.Skew, lo.AssignMargin, lo.Handover = a.bounds.MaxAge, a.bounds.Skew, a.bounds.AssignMargin, a.bounds.Handover
	if a.configPub != "" {
		pub, err := readConfigPub(a.configPub)
		if err != nil {
			return nil, usagef("-config-pub: %v", err)
		}
		so.ConfigKey = pub
	}
	var out []ingest.Assignment
	for _, s := range a.assign {
		device, spec, ok := strings.Cut(s, "=")
		e, err := ingest.ParseEvent(spec)
		if !ok || !protocol.ValidDeviceID(device) || err != nil {
			return nil, usagef("-assign %q: want DEVICE=ID:PERIOD:VOLUME:POINTS[@FROM/UNTIL]", s)
		}
		out = append(out, ingest.Assignment{DeviceID: device, Event: e})
	}
	return out, nil
}

func readConfigPub(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return provisioning.ParseConfigKey(strings.TrimSpace(string(b)))
}

const assignUsage = `usage: kiosk-ingest assign -db FILE|postgres://… -config-pub FILE [-device ID] CONFIG.json
       kiosk-ingest assignments -db FILE|postgres://… [-device ID] [-json]

assign records a signed Config (the output of ` + "`kioskctl config sign`" + `) as its device's
assignment, as a running ingest does for every Config pushed on the broker: for a
ledger that was not listening when the Config was published. The device is the
Config's deviceId, or -device for an unbound one.

assignments lists what each device was assigned, newest first, and whether it is
in force (replaced: since when).

Flags:
`

func runAssign(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("assign", stdout, assignUsage)
	db := fs.String("db", "", "the ledger")
	pubFile := fs.String("config-pub", "", "the fleet's config-signing public key `file` (config.pub)")
	device := fs.String("device", "", "the device `id` (default: the Config's deviceId)")
	file, err := parseArgs(fs, args) // the Config file, before or after the flags
	if err != nil {
		return err
	}
	if *db == "" || *pubFile == "" || len(file) != 1 {
		return usagef("assign needs -db, -config-pub and one Config file (see -h)")
	}
	pub, err := readConfigPub(*pubFile)
	if err != nil {
		return usagef("-config-pub: %v", err)
	}
	raw, err := os.ReadFile(file[0])
	if err != nil {
		return err
	}
	payload := []byte(strings.TrimSpace(string(raw)))
	d := *device
	if d == "" { // the Config's own deviceId; AssignmentOf checks the signature
		c, err := protocol.DecodeConfig(payload)
		if err != nil {
			return fmt.Errorf("%s: %w", file[0], err)
		}
		d = c.DeviceID
	}
	if d == "" {
		return usagef("the Config is bound to no device: give -device")
	}
	a, err := ingest.AssignmentOf(payload, d, pub, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", file[0], err)
	}
	l, err := ingest.Open(*db, ingest.DefaultOpts())
	if err != nil {
		return err
	}
	defer l.Close()
	added, err := l.Assign(ctx, a)
	if err != nil {
		return err
	}
	what := "recorded"
	if !added {
		what = "already recorded"
	}
	fmt.Fprintf(stdout, "%s: %s serial %d: event %s, %d point(s), %d per %s, issued %s\n", what, a.DeviceID, a.Serial,
		a.Event.ID, a.Event.Points, a.Event.Volume, a.Event.Period, protocol.FormatTime(a.AssignedAt))
	return nil
}

func runAssignments(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("assignments", stdout, assignUsage)
	db := fs.String("db", "", "the ledger")
	device := fs.String("device", "", "only this device `id`")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" || fs.NArg() != 0 {
		return usagef("assignments needs -db (see -h)")
	}
	l, err := ingest.Open(*db, ingest.DefaultOpts())
	if err != nil {
		return err
	}
	defer l.Close()
	as, err := l.Assignments(ctx, *device)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, a := range as {
			row := map[string]any{"deviceId": a.DeviceID, "serial": a.Serial, "eventId": a.Event.ID, "counterId": a.CounterID,
				"points": a.Event.Points, "constraint": map[string]any{"period": a.Event.Period, "volume": a.Event.Volume},
				"issuedAt": protocol.FormatTime(a.AssignedAt)}
			if !a.ReplacedAt.IsZero() {
				row["replacedAt"] = protocol.FormatTime(a.ReplacedAt)
			}
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSERIAL\tEVENT\tCOUNTER\tPOINTS\tCONSTRAINT\tISSUED\tSTATE")
	for _, a := range as {
		state := "in force"
		if !a.ReplacedAt.IsZero() {
			state = "replaced " + protocol.FormatTime(a.ReplacedAt)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d/%s\t%s\t%s\n", a.DeviceID, a.Serial, a.Event.ID, a.CounterID, a.Event.Points,
			a.Event.Volume, a.Event.Period, protocol.FormatTime(a.AssignedAt), state)
	}
	return tw.Flush()
}
