package main

import (
	"context"
	"io"
	"os"

	"github.com/uitpas/tap-kiosk/ingest"
)

func runLedger(ctx context.Context, args []string, stdout io.Writer) error {
	var db string
	var full bool
	fs := newFlagSet(name+" ledger", stdout, `Usage:
  kiosk-ingest ledger -db FILE|postgres://… [-full-chips]

Prints the ledger, one JSON object per line, in booking order:
id, deviceId, seq, chipNumber, eventId, counterId, status, points, tappedAt,
clockSynced, receivedAt, and datedAt (the instant the constraint was applied
to, which also decides a checkin's day in reports). Chip numbers are masked
to their first and last byte ("04…80") unless -full-chips.

Flags:
`)
	fs.StringVar(&db, "db", "", "ledger: SQLite `FILE` or postgres:// URL")
	fs.BoolVar(&full, "full-chips", false, "print whole chip numbers (card numbers: personal data)")
	if err := parse(fs, args); err != nil {
		return err
	}
	l, err := openExisting("ledger", db)
	if err != nil {
		return err
	}
	defer l.Close()
	return l.WriteLedger(ctx, stdout, ingest.ExportOpts{FullChips: full})
}

// openExisting opens the ledger at db for a subcommand that reads it: a
// SQLite file must exist (a typo must not create an empty ledger).
func openExisting(cmd, db string) (*ingest.Ledger, error) {
	if db == "" {
		return nil, usagef("%s: -db is required (see %s -h)", cmd, cmd)
	}
	if _, err := os.Stat(db); err != nil && !ingest.IsPostgres(db) {
		return nil, usagef("%s: -db %s: no such file", cmd, db)
	}
	return ingest.Open(db, ingest.DefaultOpts())
}
