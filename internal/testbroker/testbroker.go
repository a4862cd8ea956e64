// Package testbroker starts an MQTT broker for a test: a real Mosquitto on a
// free loopback port when the binary is installed, otherwise the embedded
// mochi-mqtt broker of internal/embedbroker (and the test log says so).
//
// KIOSK_TEST_BROKER chooses:
//   - unset: Mosquitto when installed, else the embedded broker;
//   - "mosquitto": Mosquitto, and a missing one fails the test (CI sets it);
//   - "embedded": the embedded broker even where Mosquitto is installed, as
//     on a machine without it (Mosquitto reports ""), to check the fallback.
//
// Either broker can be stopped and started again on the same port, with what
// it holds kept (Mosquitto's persistence; the embedded broker's memory), so
// tests can take central away and bring it back. Tests that need what only
// Mosquitto has (TLS listeners, ACLs, its configuration) call
// RequireMosquitto first.
package testbroker

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/embedbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// T is the part of testing.TB the package needs; a benchmark program
// supplies its own.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Log(args ...any)
	TempDir() string
	Cleanup(func())
}

var _ T = testing.TB(nil)

// Broker is one broker under test.
type Broker struct {
	tb   T
	Port int
	dir  string
	conf string
	cmd  *exec.Cmd
	exit chan struct{}
	emb  *embedbroker.Broker
	Kind string // "mosquitto" or "embedded"
}

// Opts adds to the generated Mosquitto configuration.
type Opts struct {
	// Extra is appended to mosquitto.conf (TLS listeners, ACL files, …):
	// features only Mosquitto has, so without it StartOpts fails the test.
	// Tests that need it call RequireMosquitto first.
	Extra string
	// Listener, when set, replaces the default plain loopback listener lines;
	// "%PORT%" in it is replaced by the chosen port. Mosquitto only, as Extra.
	Listener string
	// Tuning is appended to mosquitto.conf too, but the embedded broker does
	// without it (limits such as max_connections, which it does not have).
	Tuning string
}

// Env is the environment variable that chooses the broker.
const Env = "KIOSK_TEST_BROKER"

// Mosquitto reports the path of the mosquitto binary, or "" when there is
// none or KIOSK_TEST_BROKER=embedded. Debian installs it in /usr/sbin, which
// is not on every user's PATH, so that and /usr/local/sbin are looked in too.
func Mosquitto() string {
	if os.Getenv(Env) == "embedded" {
		return ""
	}
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// Required reports whether a missing Mosquitto must fail tests
// (KIOSK_TEST_BROKER=mosquitto).
func Required() bool { return os.Getenv(Env) == "mosquitto" }

// RequireMosquitto is for tests that need what only Mosquitto has (why says
// what): without one it skips tb, saying why, or fails it when
// KIOSK_TEST_BROKER=mosquitto.
func RequireMosquitto(tb testing.TB, why string) {
	tb.Helper()
	if Mosquitto() != "" {
		return
	}
	if Required() {
		tb.Fatalf("testbroker: mosquitto not installed, and %s=mosquitto requires it (%s)", Env, why)
	}
	tb.Skipf("testbroker: mosquitto not installed (or %s=embedded); skipped: %s. Install mosquitto to run it; CI does", Env, why)
}

// Start starts a broker for tb and stops it at cleanup.
func Start(tb T) *Broker { return StartOpts(tb, Opts{}) }

// StartOpts is Start with options for Mosquitto.
func StartOpts(tb T, o Opts) *Broker {
	tb.Helper()
	bin := Mosquitto()
	if bin == "" {
		switch {
		case Required():
			tb.Fatalf("testbroker: mosquitto not installed, and %s=mosquitto requires it", Env)
		case o.Extra != "" || o.Listener != "":
			tb.Fatal("testbroker: mosquitto not installed, and this test configures Mosquitto's own features (call RequireMosquitto first)")
		}
		if os.Getenv(Env) == "embedded" {
			tb.Log("testbroker: " + Env + "=embedded: the embedded mochi-mqtt broker")
		} else {
			tb.Log("testbroker: mosquitto not found; falling back to the embedded mochi-mqtt broker (" + Env + "=mosquitto makes that a failure)")
		}
		return startEmbedded(tb)
	}
	b := &Broker{tb: tb, Port: FreePort(tb), dir: tb.TempDir(), Kind: "mosquitto"}
	listener := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", b.Port)
	if o.Listener != "" {
		listener = strings.ReplaceAll(o.Listener, "%PORT%", fmt.Sprint(b.Port))
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	// Started as root, Mosquitto drops to user "mosquitto", who may not
	// write the test's directory: stay the user we are.
	if os.Geteuid() == 0 {
		listener = "user root\n" + listener
	}
	conf := listener +
		"persistence true\npersistence_location " + b.dir + "/\n" +
		"max_inflight_messages 1000\nmax_queued_messages 1000000\nset_tcp_nodelay true\n" +
		"log_dest file " + filepath.Join(b.dir, "mosquitto.log") + "\n" + o.Tuning + o.Extra
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	b.Start()
	tb.Cleanup(b.Stop)
	return b
}

// URL is the broker's tcp:// address.
func (b *Broker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.Port) }

// Addr is host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// Dir is the broker's working directory (config, log, persistence).
func (b *Broker) Dir() string { return b.dir }

// Start (re)starts a stopped broker on its port and waits until it accepts
// connections.
func (b *Broker) Start() {
	b.tb.Helper()
	if b.emb != nil {
		if err := b.emb.Start(); err != nil {
			b.tb.Fatalf("testbroker: %v", err)
		}
		return
	}
	if b.cmd != nil {
		return
	}
	cmd := exec.Command(Mosquitto(), "-c", b.conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.tb.Fatalf("testbroker: start mosquitto: %v", err)
	}
	b.cmd = cmd
	exit := make(chan struct{})
	b.exit = exit
	go func() { cmd.Wait(); close(exit) }()
	exited := false
	up := waitfor.Within(10*time.Second, func() bool {
		select {
		case <-exit:
			exited = true
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", b.Addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	switch {
	case exited:
		b.cmd = nil
		b.tb.Fatalf("testbroker: mosquitto exited at start:\n%s", b.Log())
	case !up:
		b.tb.Fatal("testbroker: mosquitto did not listen within 10s")
	}
}

// Stop stops the broker (SIGTERM, so it saves its persistence) and waits.
// The embedded broker stops listening and cuts its clients off, keeping its
// sessions and retained messages for Start.
func (b *Broker) Stop() {
	if b.emb != nil {
		b.emb.Stop()
		return
	}
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.exit:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.exit
	}
	b.cmd = nil
}

// Log returns what Mosquitto logged so far ("" for the embedded broker).
func (b *Broker) Log() string {
	if b.dir == "" {
		return ""
	}
	out, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
	return string(out)
}

func startEmbedded(tb T) *Broker {
	tb.Helper()
	b := &Broker{tb: tb, Port: FreePort(tb), Kind: "embedded"}
	e, err := embedbroker.Start(b.Addr(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	b.emb = e
	tb.Cleanup(func() { e.Close() })
	return b
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb T) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
