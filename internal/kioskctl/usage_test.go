package kioskctl

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// The main usage lists every flag of every command: a technician reading
// `kioskctl -h` sees all there is.
func TestUsageListsEveryFlag(t *testing.T) {
	var main bytes.Buffer
	if code := run([]string{"-h"}, &bytes.Buffer{}, &main, "test"); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	entries := usageEntries(main.String())
	flagRE := regexp.MustCompile(`(?m)^  (-[a-z-]+)`)
	for _, cmd := range []string{"identity", "ca init", "ca server-cert", "ca client-cert", "ca list", "ca revoke", "ca crl",
		"ca record", "ca serve", "provision", "provision apply",
		"mosquitto-config", "config sign", "factory-reset", "screens", "queue reset", "tap", "status", "reload", "identify", "queue recover"} {
		var help bytes.Buffer
		code := run(append(strings.Fields(cmd), "-h"), &bytes.Buffer{}, &help, "test")
		if code != 0 {
			t.Errorf("%s -h: exit %d: %s", cmd, code, help.String())
			continue
		}
		entry, ok := entries[cmd]
		if !ok {
			t.Errorf("%s: not in the main usage", cmd)
			continue
		}
		for _, m := range flagRE.FindAllStringSubmatch(help.String(), -1) {
			if !strings.Contains(entry, m[1]+" ") && !strings.Contains(entry, m[1]+"]") {
				t.Errorf("%s: flag %s missing from the main usage entry %q", cmd, m[1], entry)
			}
		}
	}
}

// usageEntries maps each command of the usage text to its entry (its line
// and the indented lines under it).
func usageEntries(usage string) map[string]string {
	out := map[string]string{}
	cmds := []string{"mosquitto-config", "provision apply", "provision", "ca init", "ca server-cert", "ca client-cert",
		"ca list", "ca revoke", "ca crl", "ca record", "ca serve",
		"config sign", "factory-reset", "identity", "screens", "queue recover", "queue reset", "tap", "status", "reload", "identify"}
	var cur string
	for _, line := range strings.Split(usage, "\n") {
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			cur = ""
			for _, c := range cmds {
				if strings.HasPrefix(line[2:], c+" ") || line[2:] == c {
					cur = c
					break
				}
			}
		}
		if cur != "" {
			out[cur] += line + "\n"
		}
	}
	return out
}

// A command asked for help prints it and dials nothing.
func TestTapHelpDoesNotDial(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"-socket", "/nonexistent/kiosk.sock", "tap", "-h"}, &out, &errb, "test")
	if code != 0 || !strings.Contains(errb.String(), "usage: kioskctl") || strings.Contains(errb.String(), "dial") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	code = run([]string{"-socket", "/nonexistent/kiosk.sock", "queue", "reset", "extra"}, &out, &errb, "test")
	if code != 2 {
		t.Fatalf("queue reset extra: exit %d", code)
	}
}
