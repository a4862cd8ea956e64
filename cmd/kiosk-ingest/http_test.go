package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad -http and -http-auth values stop the ingest with exit 2 and a line
// naming the flag; a taken port stops it with exit 1.
func TestHTTPFlags(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "l.db")
	sum := sha256.Sum256([]byte("pw"))
	authFile := filepath.Join(dir, "auth")
	if err := os.WriteFile(authFile, []byte("desk:nothex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	base := []string{"-broker", "tcp://127.0.0.1:1", "-db", db}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-http", "9464"}, 2, "-http \"9464\""},
		{[]string{"-http-auth", "desk:" + hex.EncodeToString(sum[:])}, 2, "-http-auth needs -http"},
		{[]string{"-http", "127.0.0.1:0", "-http-auth", "desk:secret"}, 2, "-http-auth: want USER:SHA256HEX"},
		{[]string{"-http", "127.0.0.1:0", "-http-auth", "@" + authFile}, 2, "-http-auth: want USER:SHA256HEX"},
		{[]string{"-http", "127.0.0.1:0", "-http-auth", "@" + filepath.Join(dir, "missing")}, 2, "-http-auth @"},
		{[]string{"-http", ln.Addr().String()}, 1, "address already in use"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), append(base, tc.args...), &out, &errb)
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.Contains(last, tc.want) || !strings.HasPrefix(last, "kiosk-ingest: ") {
			t.Errorf("%q: exit %d, stderr %q (want %d, %q)", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
	var out, errb bytes.Buffer
	run(context.Background(), []string{"-h"}, &out, &errb)
	for _, f := range []string{"-http address", "-http-auth USER:SHA256HEX"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h lacks %q", f)
		}
	}
}
