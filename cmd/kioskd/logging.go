package main

import (
	"io"
	"log/slog"

	"github.com/uitpas/tap-kiosk/internal/journallog"
)

// logOpts shapes kioskd's log: stderr, which systemd hands to the journal
// (see internal/journallog, shared with kiosk-ingest).
type logOpts = journallog.Opts

// newLogHandler returns the handler kioskd logs through: text lines, card
// numbers masked whatever the caller passed, repeated warnings and errors
// rate-limited, journal priorities when stderr is the journal.
func newLogHandler(w io.Writer, o logOpts) slog.Handler { return journallog.New(w, o) }

// parseLevel reads a log.level value (validated by provisioning).
func parseLevel(s string) slog.Level { return journallog.ParseLevel(s) }

// journalStream reports whether stderr is connected to the journal
// (JOURNAL_STREAM, checked against fd 2 through stat).
func journalStream(env string, stat func() (dev, ino uint64, ok bool)) bool {
	return journallog.Stream(env, stat)
}

// stderrID is the device and inode of fd 2, to compare with JOURNAL_STREAM.
func stderrID() (dev, ino uint64, ok bool) { return journallog.StderrID() }
