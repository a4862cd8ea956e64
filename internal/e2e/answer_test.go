package e2e

// What a passholder sees and hears when central refuses a tap the kiosk
// queued: two kiosks of this process (the real assembly, with a recording
// panel and buzzer) against a spawned kiosk-ingest and broker.

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// panel records what a kiosk showed and sounded, in order.
type panel struct {
	mu      sync.Mutex
	screens []display.Screen
	signals []display.Pattern
}

func (p *panel) Show(s display.Screen) { p.mu.Lock(); p.screens = append(p.screens, s); p.mu.Unlock() }
func (p *panel) Signal(s display.Pattern) {
	p.mu.Lock()
	p.signals = append(p.signals, s)
	p.mu.Unlock()
}
func (p *panel) Halt() error    { return nil }
func (p *panel) String() string { return "recording panel" }

// mark returns how much was recorded so far; since returns what came after.
func (p *panel) mark() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.screens), len(p.signals)
}
func (p *panel) since(screens, signals int) ([]display.Kind, []display.Pattern) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var kinds []display.Kind
	for _, s := range p.screens[screens:] {
		kinds = append(kinds, s.Kind)
	}
	return kinds, slices.Clone(p.signals[signals:])
}

type answerKiosk struct {
	t     *testing.T
	k     *kiosk.Kiosk
	sock  string
	panel *panel
}

// awaitResult is generous here, so that a loaded machine still answers in
// time; the default is 300ms.
const awaitResult = 2 * time.Second

func startAnswerKiosk(t *testing.T, dir, device, broker string) *answerKiosk {
	t.Helper()
	c := provisioning.Default()
	c.DeviceID, c.StateDir, c.Path = device, filepath.Join(dir, device), "answer_test"
	c.Event.ID, c.Event.Title, c.Event.CounterID = "evt-answer", "Leesclub", "balie-answer"
	c.Event.Period, c.Event.Volume = protocol.PeriodAbsolute, 1
	c.Tap.Hold, c.Tap.AwaitResult = time.Second, awaitResult
	c.Control.Socket = filepath.Join(dir, device+".sock")
	c.MQTT.Broker, c.MQTT.AllowInsecure, c.MQTT.RetryAfter = broker, true, 3*time.Second
	c.Display.SpaarcodeEvery = -1
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, device+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	p := &panel{}
	ready := make(chan struct{})
	k, err := kiosk.New(c, kiosk.Opts{Version: "e2e", Display: p, Indicator: p, OnReady: func() { close(ready) },
		Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", device, err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s: %v", device, err)
	}
	return &answerKiosk{t: t, k: k, sock: c.Control.Socket, panel: p}
}

func (a *answerKiosk) connected() bool { return a.k.Forwarder().Connected() }

// tap taps chip through the control socket and says how long the reply
// took.
func (a *answerKiosk) tap(chip string) (kiosk.TapReply, time.Duration) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	line, err := control.Call(ctx, a.sock, control.Request{Op: "tap", ChipNumber: chip})
	took := time.Since(t0)
	if err != nil {
		a.t.Fatal(err)
	}
	var r kiosk.TapReply
	if err := json.Unmarshal(line, &r); err != nil || !r.OK {
		a.t.Fatalf("tap reply %s: %v", line, err)
	}
	return r, took
}

func (a *answerKiosk) pending() int {
	st, err := a.k.Outbox().Stats(context.Background())
	if err != nil {
		return -1
	}
	return st.Pending
}

// TestRefusalIsTheFirstAnswer: a card saved at kiosk A, then tapped at
// kiosk B of the same activity (ABSOLUTE, once): B shows central's refusal
// first, with the already-saved beep, and never the saved screen. With the
// ingest stopped, B shows saved, the first tap after at most
// tap.await_result and the next at once; with the broker gone, at once.
func TestRefusalIsTheFirstAnswer(t *testing.T) {
	dir := t.TempDir()
	broker := testbroker.Start(t)
	t.Logf("broker: %s (%s)", broker.URL(), broker.Kind)
	ingest := start(t, "kiosk-ingest", filepath.Join(dir, "ingest.log"), "-broker", broker.URL(),
		"-db", filepath.Join(dir, "ledger.db"), "-enroll-unknown", "-default-period", "ABSOLUTE", "-default-volume", "1")
	a := startAnswerKiosk(t, dir, "kiosk-answer-a", broker.URL())
	b := startAnswerKiosk(t, dir, "kiosk-answer-b", broker.URL())
	waitfor.CondWithin(t, 30*time.Second, "both kiosks connected", func() bool { return a.connected() && b.connected() })

	const card = "04A1B2C3D4E5F6"
	ra, _ := a.tap(card)
	if ra.Outcome != "saved" || ra.Screen != "saved" {
		t.Fatalf("kiosk A: %+v", ra)
	}
	waitfor.CondWithin(t, 30*time.Second, "kiosk A's Result", func() bool { return a.pending() == 0 })

	screens, signals := b.panel.mark()
	rb, _ := b.tap(card)
	if rb.Outcome != "saved" || rb.Screen != string(display.AlreadySaved) || rb.Result != protocol.StatusMaximumReached {
		t.Fatalf("kiosk B: %+v, want central's refusal (already-saved, maximum-reached) first", rb)
	}
	// The tap's screen, then idle after the hold: never saved.
	waitfor.CondWithin(t, 20*time.Second, "kiosk B back to idle", func() bool {
		kinds, _ := b.panel.since(screens, signals)
		return len(kinds) > 0 && kinds[len(kinds)-1] == display.Idle
	})
	kinds, sounds := b.panel.since(screens, signals)
	if slices.Contains(kinds, display.Saved) || kinds[0] != display.AlreadySaved {
		t.Errorf("kiosk B showed %v, want already-saved then idle, never saved", kinds)
	}
	if !slices.Equal(sounds, []display.Pattern{display.SignalAlreadySaved}) {
		t.Errorf("kiosk B sounded %v, want the already-saved signal only", sounds)
	}

	// Central stops answering: saved, the first tap after one wait, the
	// next without waiting.
	ingest.stop(syscall.SIGTERM)
	screens, signals = b.panel.mark()
	r1, took1 := b.tap("04A1B2C3D4E5F7")
	r2, took2 := b.tap("04A1B2C3D4E5F8")
	for _, r := range []kiosk.TapReply{r1, r2} {
		if r.Outcome != "saved" || r.Screen != "saved" || r.Result != "" {
			t.Errorf("ingest stopped: %+v, want saved", r)
		}
	}
	if took1 > awaitResult+3*time.Second || took2 >= awaitResult/2 {
		t.Errorf("ingest stopped: taps answered after %s and %s; want at most tap.await_result (%s), then no wait", took1, took2, awaitResult)
	}
	if _, sounds := b.panel.since(screens, signals); !slices.Equal(sounds, []display.Pattern{display.SignalSaved, display.SignalSaved}) {
		t.Errorf("ingest stopped: sounded %v, want the saved signal twice", sounds)
	}

	// The broker goes too: offline, saved at once.
	broker.Stop()
	waitfor.CondWithin(t, 30*time.Second, "kiosk B offline", func() bool { return !b.connected() })
	r3, took3 := b.tap("04A1B2C3D4E5F9")
	if r3.Screen != "saved" || r3.Result != "" || took3 >= awaitResult/2 {
		t.Errorf("offline: %+v after %s, want saved at once", r3, took3)
	}
}
