package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/uitpas/tap-kiosk/internal/fleetsim"
)

// TestHelpDescribesSummary: -h describes every field of the summary line
// and the exit status.
func TestHelpDescribesSummary(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	help := errb.String()
	st := reflect.TypeFor[fleetsim.Summary]()
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(help, "\n  "+name+" ") {
			t.Errorf("-h does not describe the summary's %q", name)
		}
	}
	if !strings.Contains(help, "Exit status") || !strings.Contains(help, "-chaos-broker") {
		t.Errorf("-h:\n%s", help)
	}
}

// TestSetupErrorsExit2: what fails before any tap exits 2 with one line, not
// 1 as a lost tap does.
func TestSetupErrorsExit2(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bogus"}, "-bogus"},
		{[]string{"-kiosks", "0"}, "must be positive"},
		{[]string{"-broker", "tcp://127.0.0.1:1", "-chaos-broker", "1s"}, "a broker of our own"},
		{[]string{"-dir", filepath.Join(file, "sub"), "-kiosks", "1", "-duration", "1s"}, "-dir"},
		{[]string{"-db", "postgres://postgres@127.0.0.1:1/none?sslmode=disable", "-kiosks", "1", "-duration", "1s"}, "ledger"},
		{[]string{"-cpuprofile", filepath.Join(file, "cpu.prof"), "-kiosks", "1", "-duration", "1s"}, "cpu.prof"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		last := lines[len(lines)-1]
		if code != 2 || !strings.Contains(errb.String(), tc.want) || !strings.HasPrefix(last, "kiosk-fleetsim: ") || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}

// TestDirMadeAndRunsKeptApart: a -dir that does not exist is made, and a
// second run in it gets a directory of its own, so it reports no false
// duplicates from the first run's ledger and queues.
func TestDirMadeAndRunsKeptApart(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet runs in -short mode")
	}
	dir := filepath.Join(t.TempDir(), "not", "yet")
	var dirs []string
	for i := range 2 {
		var out, errb bytes.Buffer
		prof := filepath.Join(t.TempDir(), "cpu.prof")
		code := run(context.Background(), []string{"-dir", dir, "-kiosks", "3", "-rate", "4", "-duration", "1500ms", "-cpuprofile", prof}, &out, &errb)
		if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
			t.Fatalf("run %d: -cpuprofile wrote no profile: %v", i+1, err)
		}
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstdout %s\nstderr %s", i+1, code, out.String(), errb.String())
		}
		var sum fleetsim.Summary
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			t.Fatalf("run %d: summary %q: %v", i+1, out.String(), err)
		}
		if sum.Saved == 0 || sum.Lost != 0 || sum.Duplicates != 0 {
			t.Fatalf("run %d: %+v", i+1, sum)
		}
		if filepath.Dir(sum.Dir) != dir {
			t.Fatalf("run %d: its directory %q is not below -dir %q", i+1, sum.Dir, dir)
		}
		if _, err := os.Stat(filepath.Join(sum.Dir, "ledger.db")); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		dirs = append(dirs, sum.Dir)
	}
	if dirs[0] == dirs[1] {
		t.Fatalf("both runs in %s", dirs[0])
	}
}
