package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateOutsideCheckout: the bench's state is in a temporary directory
// outside the working tree (it used to make .bench-* in the checkout), below
// -tmp when given, and cleanup removes it.
func TestStateOutsideCheckout(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, parent := range []string{"", t.TempDir()} {
		b := &bench{}
		if err := b.makeDir(parent); err != nil {
			t.Fatal(err)
		}
		d := b.stateDir()
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Fatalf("state directory %s: %v", d, err)
		}
		if strings.HasPrefix(d, wd+string(filepath.Separator)) {
			t.Errorf("state directory %s is in the working directory %s", d, wd)
		}
		if parent != "" && filepath.Dir(d) != parent {
			t.Errorf("state directory %s is not below -tmp %s", d, parent)
		}
		if b.Dir != d {
			t.Errorf("the broker's directories go to %q, not the state directory %q", b.Dir, d)
		}
		b.cleanup()
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("state directory %s left behind: %v", d, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(wd, ".bench-*")); len(m) > 0 {
		t.Errorf("state in the working directory: %v", m)
	}
}
