package journallog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeNow struct{ t time.Time }

func (f *fakeNow) now() time.Time { return f.t }

func TestLogMasksCardNumbers(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(New(&out, Opts{Level: slog.LevelDebug}))
	log.Info("tap", "chip", "042F51B2712380", "other", "04A1B2C3", "masked", "04…80", "device", "kiosk-bib-01",
		"id", "0192e0c4-7a1b-7c3d-8e9f-0123456789ab")
	got := out.String()
	for _, whole := range []string{"042F51B2712380", "04A1B2C3"} {
		if strings.Contains(got, whole) {
			t.Errorf("whole card number %s logged: %s", whole, got)
		}
	}
	for _, keep := range []string{"chip=04…80", "other=04…C3", "masked=04…80", "device=kiosk-bib-01", "0192e0c4-7a1b"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q missing: %s", keep, got)
		}
	}
}

func TestLogRateLimitsRepeatedErrors(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeNow{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	log := slog.New(New(&out, Opts{Level: slog.LevelInfo, Burst: 2, Window: time.Minute, Now: clk.now}))
	mqtt := log.With("part", "mqtt")
	queue := log.With("part", "queue")
	for i := 0; i < 10; i++ {
		mqtt.Warn("connect failed", "attempt", i)
		log.Info("tap saved", "n", i) // info is never limited
	}
	queue.Warn("connect failed") // another part: its own budget
	if n := strings.Count(out.String(), "connect failed"); n != 3 {
		t.Fatalf("%d warnings written, want 2 of mqtt + 1 of queue:\n%s", n, out.String())
	}
	if n := strings.Count(out.String(), "tap saved"); n != 10 {
		t.Fatalf("info lines limited: %d", n)
	}
	out.Reset()
	clk.t = clk.t.Add(time.Minute)
	mqtt.Warn("connect failed", "attempt", 10)
	if got := out.String(); !strings.Contains(got, "suppressed=8") || !strings.Contains(got, "attempt=10") {
		t.Fatalf("after the window: %q", got)
	}
}

func TestLogJournalPriorities(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(New(&out, Opts{Level: slog.LevelDebug, Journal: true}))
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"<7>level=DEBUG msg=d", "<6>level=INFO msg=i", "<4>level=WARN msg=w", "<3>level=ERROR msg=e"}
	if len(lines) != len(want) {
		t.Fatalf("%q", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %q, want %q (no time: journald adds it)", i, lines[i], want[i])
		}
	}
}

func TestLogLevel(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(New(&out, Opts{Level: ParseLevel("warn")}))
	log.Info("chatty")
	log.Warn("worth it")
	if strings.Contains(out.String(), "chatty") || !strings.Contains(out.String(), "worth it") {
		t.Fatalf("%q", out.String())
	}
	if ParseLevel("nonsense") != slog.LevelInfo {
		t.Fatal("bad level is not info")
	}
}

func TestJournalStream(t *testing.T) {
	stat := func() (uint64, uint64, bool) { return 25, 4711, true }
	cases := map[string]bool{"25:4711": true, "25:4712": false, "": false, "x:y": false, "25": false}
	for env, want := range cases {
		if got := Stream(env, stat); got != want {
			t.Errorf("%q: %v", env, got)
		}
	}
}

// TestLevelVar: a *slog.LevelVar (kiosk-ingest's -log-level) works as Level.
func TestLevelVar(t *testing.T) {
	var out bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelError)
	log := slog.New(New(&out, Opts{Level: lv}))
	log.Warn("quiet")
	log.Error("loud")
	if strings.Contains(out.String(), "quiet") || !strings.Contains(out.String(), "loud") {
		t.Fatalf("%q", out.String())
	}
	out.Reset()
	slog.New(New(&out, Opts{})).Debug("nil level is info")
	if out.Len() != 0 {
		t.Fatalf("debug written with a nil Level: %q", out.String())
	}
}

// TestNotJournalKeepsTime: outside the journal each line has its time and
// no priority prefix.
func TestNotJournalKeepsTime(t *testing.T) {
	var out bytes.Buffer
	slog.New(New(&out, Opts{})).Info("hello")
	if got := out.String(); !strings.HasPrefix(got, "time=") || strings.HasPrefix(got, "<") {
		t.Fatalf("%q", got)
	}
}
