// Package testbroker starts an MQTT broker for a test: a real Mosquitto on a
// free loopback port when the binary is installed, otherwise the embedded
// mochi-mqtt broker of internal/embedbroker (and the test log says so). KIOSK_TEST_BROKER=mosquitto
// makes a missing Mosquitto a test failure, which CI sets.
//
// A Mosquitto broker can be stopped and started again on the same port, with
// its persistence kept, so tests can take central away and bring it back.
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

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/uitpas/tap-kiosk/internal/embedbroker"
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
	tb    T
	Port  int
	dir   string
	conf  string
	cmd   *exec.Cmd
	exit  chan struct{}
	mochi *mqtt.Server
	Kind  string // "mosquitto" or "embedded"
}

// Opts adds to the generated Mosquitto configuration.
type Opts struct {
	// Extra is appended to mosquitto.conf (TLS listeners, ACL files, …).
	// Tests that need it should use RequireMosquitto.
	Extra string
	// Listener, when set, replaces the default plain loopback listener lines;
	// "%PORT%" in it is replaced by the chosen port.
	Listener string
}

// Mosquitto reports the path of the mosquitto binary, or "".
func Mosquitto() string {
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// Start starts a broker for tb and stops it at cleanup.
func Start(tb T) *Broker { return StartOpts(tb, Opts{}) }

// StartOpts is Start with options for Mosquitto.
func StartOpts(tb T, o Opts) *Broker {
	tb.Helper()
	bin := Mosquitto()
	if bin == "" {
		if os.Getenv("KIOSK_TEST_BROKER") == "mosquitto" || o.Extra != "" || o.Listener != "" {
			tb.Fatal("testbroker: mosquitto not installed (KIOSK_TEST_BROKER=mosquitto or the test needs its TLS/ACL features)")
		}
		tb.Log("testbroker: mosquitto not found; falling back to the embedded mochi-mqtt broker")
		return startMochi(tb)
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
		"log_dest file " + filepath.Join(b.dir, "mosquitto.log") + "\n" + o.Extra
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
	if b.mochi != nil || b.cmd != nil {
		return
	}
	if b.Kind == "embedded" {
		b.tb.Fatal("testbroker: the embedded broker cannot be restarted")
	}
	cmd := exec.Command(Mosquitto(), "-c", b.conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.tb.Fatalf("testbroker: start mosquitto: %v", err)
	}
	b.cmd = cmd
	b.exit = make(chan struct{})
	go func() { cmd.Wait(); close(b.exit) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.exit:
			log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			b.tb.Fatalf("testbroker: mosquitto exited at start:\n%s", log)
		default:
		}
		if c, err := net.DialTimeout("tcp", b.Addr(), 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.tb.Fatal("testbroker: mosquitto did not listen within 10s")
}

// Stop stops the broker (SIGTERM, so it saves its persistence) and waits.
func (b *Broker) Stop() {
	if b.mochi != nil {
		b.mochi.Close()
		b.mochi = nil
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

// Log returns what Mosquitto logged so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
	return string(out)
}

func startMochi(tb T) *Broker {
	b := &Broker{tb: tb, Port: FreePort(tb), Kind: "embedded"}
	s, err := embedbroker.Start(b.Addr(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	b.mochi = s
	tb.Cleanup(b.Stop)
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
