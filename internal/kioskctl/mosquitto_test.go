package kioskctl

import (
	"bytes"
	"strings"
	"testing"
)

// userBlock returns the ACL lines under "user NAME" (up to the next blank
// line), without comments.
func userBlock(acl, name string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(acl, "\n") {
		switch {
		case l == "user "+name:
			in = true
		case in && strings.TrimSpace(l) == "":
			in = false
		case in && !strings.HasPrefix(l, "#"):
			out = append(out, l)
		}
	}
	return out
}

// -ingest, -config and -monitor each give their certificates one role: the
// config publisher writes configs and nothing else, the ingest does not
// write configs.
func TestMosquittoConfigRoles(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"mosquitto-config", "-acl", "-ingest", "ing-1.central,ing-2.central", "-config", "cfg.central"},
		&out, &errb, "test"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	acl := out.String()
	for _, ing := range []string{"ing-1.central", "ing-2.central"} {
		got := strings.Join(userBlock(acl, ing), "\n")
		want := "topic read kiosk/v1/+/checkin\ntopic read $share/+/kiosk/v1/+/checkin\ntopic read kiosk/v1/+/status\ntopic read kiosk/v1/+/config\ntopic write kiosk/v1/+/result"
		if got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", ing, got, want)
		}
	}
	if got := userBlock(acl, "cfg.central"); len(got) != 1 || got[0] != "topic write kiosk/v1/+/config" {
		t.Errorf("config role: %q", got)
	}
	if strings.Contains(acl, "config.central") {
		t.Errorf("-config replaces the default:\n%s", acl)
	}
	// Defaults: ingest.central, config.central, monitor.central.
	out.Reset()
	if code := run([]string{"mosquitto-config", "-acl"}, &out, &errb, "test"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := userBlock(out.String(), "config.central"); len(got) != 1 || got[0] != "topic write kiosk/v1/+/config" {
		t.Errorf("default config role: %q\n%s", got, out.String())
	}
	if got := userBlock(out.String(), "ingest.central"); strings.Contains(strings.Join(got, "\n"), "write kiosk/v1/+/config") {
		t.Errorf("default ingest writes configs: %q", got)
	}
}

// -signer names the renewal signer's certificates; the configuration reads
// the CRL from -certs.
func TestMosquittoConfigSignerAndCRL(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"mosquitto-config", "-acl", "-signer", "renew.central"}, &out, &errb, "test"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := userBlock(out.String(), "renew.central"); strings.Join(got, "|") != "topic read kiosk/v1/+/csr|topic write kiosk/v1/+/cert" {
		t.Errorf("signer role: %q", got)
	}
	for _, l := range []string{"pattern write kiosk/v1/%u/csr\n", "pattern read kiosk/v1/%u/cert\n"} {
		if !strings.Contains(out.String(), l) {
			t.Errorf("ACL lacks %q", l)
		}
	}
	out.Reset()
	if code := run([]string{"mosquitto-config", "-certs", "/srv/certs"}, &out, &errb, "test"); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "\ncrlfile /srv/certs/crl.pem\n") {
		t.Errorf("no crlfile:\n%s", out.String())
	}
}
