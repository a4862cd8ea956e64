package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/provisioning"
)

// TestAssignCommand: `kiosk-ingest assign` records a signed Config as its
// device's assignment (once), `assignments` lists it; a tampered Config, an
// unbound one without -device and a missing flag are refused.
func TestAssignCommand(t *testing.T) {
	dir := t.TempDir()
	ca, err := provisioning.InitCA(filepath.Join(dir, "ca"), "", time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(ca.Dir, provisioning.ConfigPubFile)
	db := filepath.Join(dir, "ledger.db")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	event := []byte(`{"serial":7,"eventId":"evt-a","counterId":"balie","points":2,"constraint":{"period":"WEEK","volume":1}}`)
	bound, err := ca.SignConfigFor(event, "kiosk-as-01", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := ca.SignConfigJSON(event, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	run1 := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	for i, want := range []string{"recorded: kiosk-as-01 serial 7", "already recorded: kiosk-as-01 serial 7"} {
		if code, out := run1("assign", "-db", db, "-config-pub", pub, write("bound.json", bound)); code != 0 || !strings.Contains(out, want) {
			t.Fatalf("assign #%d: exit %d\n%s", i+1, code, out)
		}
	}
	tampered := bytes.Replace(bound, []byte(`"points":2`), []byte(`"points":9`), 1)
	if code, out := run1("assign", "-db", db, "-config-pub", pub, write("tampered.json", tampered)); code != 1 || !strings.Contains(out, "tampered.json") {
		t.Fatalf("tampered Config: exit %d\n%s", code, out)
	}
	if code, out := run1("assign", "-db", db, "-config-pub", pub, write("unbound.json", unbound)); code != 2 || !strings.Contains(out, "-device") {
		t.Fatalf("unbound Config without -device: exit %d\n%s", code, out)
	}
	if code, _ := run1("assign", "-db", db, write("x.json", bound)); code != 2 {
		t.Fatalf("without -config-pub: exit %d", code)
	}
	code, out := run1("assignments", "-db", db, "-json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"deviceId":"kiosk-as-01"`) ||
		!strings.Contains(out, `"points":2`) || !strings.Contains(out, `"serial":7`) {
		t.Fatalf("assignments: exit %d\n%s", code, out)
	}
}
