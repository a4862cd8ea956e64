package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/uitpas/tap-kiosk/internal/pgtest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

func TestBadFlagsExit2WithOneLine(t *testing.T) {
	db := filepath.Join(t.TempDir(), "l.db")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-bogus"}, "-bogus"},
		{[]string{"-db", db}, "-broker is required"},
		{[]string{"-broker", "tcp://127.0.0.1:1"}, "-db is required"},
		{[]string{"-broker", "localhost:1883", "-db", db}, "-broker"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "-default-period", "HOUR"}, "-default-period"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "-default-volume", "0"}, "-default-volume"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "-event", "evt:DAY:1"}, "-event"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "-topic-prefix", "kiosk/#"}, "-topic-prefix"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "-block", "08123456"}, "-block"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "-tls-cert", "x.pem"}, "-tls-key"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-db", db, "extra"}, "unexpected argument"},
		{[]string{"ledger"}, "-db is required"},
		{[]string{"ledger", "-db", db}, "no such file"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[0], "kiosk-ingest: ") {
			t.Errorf("%q: exit %d, stderr %q (want %q)", tc.args, code, errb.String(), tc.want)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-version"}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != "kiosk-ingest dev" {
		t.Errorf("-version: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-enroll-unknown") {
		t.Errorf("-h: %d %q", code, out.String())
	}
}

// syncBuffer is a bytes.Buffer the service may log into while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeThenLedger(t *testing.T) {
	testServeThenLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
}

// TestServeThenLedgerPostgres is the same with a postgres:// ledger, in a
// schema of its own.
func TestServeThenLedgerPostgres(t *testing.T) { testServeThenLedger(t, pgDSN(t)) }

func testServeThenLedger(t *testing.T, db string) {
	b := testbroker.Start(t)
	const chip = "042F51B2712380"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-broker", b.URL(), "-db", db, "-client-id", "ingest-main-test",
			"-assign", "kiosk-main-01=evt-1:WEEK:1:2", "-passholder", chip}, &bytes.Buffer{}, &stderr)
	}()
	waitfor.Cond(t, "subscription", func() bool { return strings.Contains(stderr.String(), "msg=subscribed") })

	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("kiosk-main-01")
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(50)
	got := make(chan protocol.Result, 1)
	if tok := c.Subscribe("kiosk/v1/kiosk-main-01/result", 1, func(_ mqtt.Client, m mqtt.Message) {
		if r, err := protocol.DecodeResult(m.Payload()); err == nil {
			got <- r
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	ck := protocol.Checkin{ID: uuid.Must(uuid.NewV7()).String(), DeviceID: "kiosk-main-01", Seq: 1, ChipNumber: chip,
		EventID: "evt-1", CounterID: "balie-main", TappedAt: protocol.FormatTime(time.Now()), ClockSynced: true}
	if tok := c.Publish("kiosk/v1/kiosk-main-01/checkin", 1, false, ck.Encode()); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case r := <-got:
		if r.ID != ck.ID || r.Status != protocol.StatusSaved || r.NewPoints != 2 || r.TotalPoints != 2 {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no result")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), chip) {
		t.Errorf("a whole chip number was logged")
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"ledger", "-db", db}, &out, &errb); code != 0 {
		t.Fatalf("ledger exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("ledger: %q", out.String())
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	if e["id"] != ck.ID || e["deviceId"] != "kiosk-main-01" || e["seq"] != 1.0 || e["chipNumber"] != protocol.MaskChip(chip) ||
		e["eventId"] != "evt-1" || e["counterId"] != "balie-main" || e["clockSynced"] != true || e["status"] != "saved" ||
		e["points"] != 2.0 || e["tappedAt"] != ck.TappedAt || e["receivedAt"] == "" {
		t.Errorf("ledger line %s", lines[0])
	}
	out.Reset()
	if code := run(context.Background(), []string{"ledger", "-db", db, "-full-chips"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), `"chipNumber":"`+chip+`"`) {
		t.Errorf("ledger -full-chips: exit %d, %s", code, out.String())
	}
}

// pgDSN is a fresh, empty PostgreSQL ledger location (see internal/pgtest).
func pgDSN(tb testing.TB) string { tb.Helper(); return pgtest.DSN(tb) }
