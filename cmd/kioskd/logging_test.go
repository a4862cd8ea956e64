package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// The handler's own tests are in internal/journallog; these check that
// kioskd logs through it as its main wires it.

func TestLogMasksCardNumbers(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(newLogHandler(&out, logOpts{Level: slog.LevelDebug}))
	log.Info("tap", "chip", "042F51B2712380")
	if got := out.String(); strings.Contains(got, "042F51B2712380") || !strings.Contains(got, "chip=04…80") {
		t.Errorf("card number not masked: %s", got)
	}
}

func TestLogJournalPriorities(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(newLogHandler(&out, logOpts{Level: parseLevel("debug"), Journal: true}))
	log.Debug("d")
	log.Warn("w")
	if got, want := out.String(), "<7>level=DEBUG msg=d\n<4>level=WARN msg=w\n"; got != want {
		t.Errorf("%q, want %q (no time: journald adds it)", got, want)
	}
}

func TestJournalStream(t *testing.T) {
	stat := func() (uint64, uint64, bool) { return 25, 4711, true }
	if !journalStream("25:4711", stat) || journalStream("25:4712", stat) {
		t.Error("JOURNAL_STREAM not compared with stderr")
	}
}
