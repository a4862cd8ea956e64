package kioskctl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func resetConfig(t *testing.T) (cfg, state string) {
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	cfg = filepath.Join(dir, "kioskd.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("device_id = \"kiosk-reset-01\"\nstate_dir = %q\n[control]\nsocket = %q\n",
		state, filepath.Join(dir, "none.sock"))), 0o600)
	return cfg, state
}

// factory-reset never follows a link in the state directory: a queue.db
// pointing elsewhere is refused, and -force removes the link, not its target.
func TestFactoryResetDoesNotFollowLinks(t *testing.T) {
	cfg, state := resetConfig(t)
	target := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(target, []byte("not ours"), 0o600)
	os.Symlink(target, filepath.Join(state, "queue.db"))
	var out, errb bytes.Buffer
	if code := run([]string{"factory-reset", "-config", cfg}, &out, &errb, "test"); code == 0 || !strings.Contains(errb.String(), "symbolic link") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if code := run([]string{"factory-reset", "-config", cfg, "-force"}, &out, &errb, "test"); code != 0 {
		t.Fatalf("-force: exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "not ours" {
		t.Fatalf("the link's target: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(state, "queue.db")); err == nil {
		t.Fatal("the link is still there")
	}
}

// A factory reset forgets the fleet trust (a kiosk may join another fleet).
func TestFactoryResetForgetsTrust(t *testing.T) {
	cfg, state := resetConfig(t)
	os.WriteFile(filepath.Join(state, "trust.json"), []byte("{}"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"factory-reset", "-config", cfg}, &out, &errb, "test"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(state, "trust.json")); err == nil {
		t.Fatal("trust.json survived the reset")
	}
}

// A corrupt queue is refused without -force and wiped with it.
func TestFactoryResetForceWipesCorruptQueue(t *testing.T) {
	cfg, state := resetConfig(t)
	q := filepath.Join(state, "queue.db")
	os.WriteFile(q, bytes.Repeat([]byte("garbage "), 1000), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"factory-reset", "-config", cfg}, &out, &errb, "test"); code == 0 {
		t.Fatalf("a corrupt queue was wiped without -force: %s", out.String())
	}
	if code := run([]string{"factory-reset", "-config", cfg, "-force"}, &out, &errb, "test"); code != 0 {
		t.Fatalf("-force: exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(q); err == nil {
		t.Fatal("the corrupt queue is still there")
	}
}
