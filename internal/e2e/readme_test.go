package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/kiosk/control"
)

// TestReadmeWalkthrough runs the ```sh blocks of the README's "Setting up a
// kiosk (technicians)" section as shell scripts, in order, with kioskctl,
// kioskd and kiosk-ingest from this tree. What differs from a real fleet
// is said here, and only here:
//   - absolute paths (/etc, /var, /run) live under a test directory; the
//     broker host is localhost on a free port; `-g mosquitto` is dropped;
//   - the package's /etc/kioskd/kioskd.toml (systemd/kioskd.toml) is put in
//     place first, as the .deb does, but with the simulated reader, no
//     display, and no buzzer or LED;
//   - `sudo` just runs its command; `systemctl` and the long-running
//     `kiosk-ingest` are handed to the test, which starts and stops the
//     real programs (Mosquitto with the configuration the README installed);
//   - the pairing code in the README is replaced by the one the kiosk shows.
func TestReadmeWalkthrough(t *testing.T) {
	testbroker.RequireMosquitto(t, "the walkthrough installs Mosquitto's TLS listener and ACLs")
	blocks := readmeBlocks(t, "## Setting up a kiosk (technicians)")
	if len(blocks) != 7 {
		t.Fatalf("the README section has %d sh blocks; this test knows 7 (update both together)", len(blocks))
	}
	h := newHarness(t)

	h.run(blocks[0]) // CA, broker certificate, ingest certificate, Mosquitto
	if h.broker == nil {
		t.Fatal("block 1 did not restart mosquitto")
	}
	h.run(blocks[1]) // the ingest
	h.installPackagedConfig()
	h.run(blocks[2]) // the kiosk's first start and identity
	// The README edits the packaged configuration; it must not replace it
	// and lose the wiring (the reader's IRQ and reset lines, …).
	conf, err := os.ReadFile(filepath.Join(h.root, "etc/kioskd/kioskd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`device_id = "kiosk-bib-geel-01"`, `irq = "GPIO25"`, `reset = "GPIO24"`, `[queue]`} {
		if !strings.Contains(string(conf), want) {
			t.Fatalf("after README block 3 the configuration has no %s:\n%s", want, conf)
		}
	}
	idText, err := os.ReadFile(filepath.Join(h.work, "kiosk-bib-geel-01.id"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4})`).FindSubmatch(idText)
	if m == nil {
		t.Fatalf("kioskctl identity printed no pairing code:\n%s", idText)
	}
	h.code = string(m[1])
	st := h.status()
	if st.Provisioned || st.PairingCode != h.code || st.MQTT != "disconnected" {
		t.Fatalf("unprovisioned kioskd: %+v, want pairing code %s and no broker", st, h.code)
	}
	if !strings.Contains(h.kioskd.logText(), h.code) {
		t.Fatal("kioskd did not log its pairing code")
	}
	if !bytes.Contains(idText, []byte("BEGIN CERTIFICATE REQUEST")) {
		t.Fatal("kioskctl identity printed no CSR")
	}

	// A wrong pairing code is refused and writes no bundle.
	wrong := strings.Replace(h.subst(blocks[3]), h.code, "0000-0000", 1)
	if out, err := h.script(wrong); err == nil || !strings.Contains(out, "pairing code") {
		t.Fatalf("provisioning with a wrong pairing code: err=%v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(h.work, "kiosk-bib-geel-01.bundle")); err == nil {
		t.Fatal("a bundle was written for a wrong pairing code")
	}
	h.run(blocks[3]) // provision
	h.run(blocks[4]) // apply
	h.waitFor("kiosk connected over TLS with its first event", func() bool {
		st := h.status()
		return st.Provisioned && st.MQTT == "connected" && st.EventID == "evt-7781"
	})
	st = h.status()
	if st.CertExpiresInDays == nil || *st.CertExpiresInDays < 700 || len(st.Warnings) != 0 {
		t.Fatalf("status after provisioning: %+v", st)
	}
	h.tap("04E2E000000042", "saved")
	h.waitFor("central answered the tap", func() bool { return h.status().Pending == 0 })

	h.run(blocks[5]) // a new signed event with a hot list
	h.waitFor("the new event in force", func() bool {
		st := h.status()
		return st.EventID == "evt-7790" && st.ConfigSerial == 2
	})
	h.tap("04AABBCCDDEEFF", "blocked")

	// The ledger has the tap, from this device, over TLS.
	out, err := exec.Command(filepath.Join(binDir, "kiosk-ingest"), "ledger", "-db",
		filepath.Join(h.root, "var/lib/kiosk-ingest/ledger.db")).Output()
	if err != nil || !strings.Contains(string(out), `"deviceId":"kiosk-bib-geel-01"`) {
		t.Fatalf("ledger: %v\n%s", err, out)
	}

	h.run(blocks[6]) // factory reset
	if _, err := os.Stat(filepath.Join(h.root, "var/lib/kioskd/identity.key")); err == nil {
		t.Fatal("factory reset left the identity")
	}
}

// readmeBlocks returns the ```sh blocks of one README section.
func readmeBlocks(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i+len(heading):]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// harness runs README blocks and serves their systemctl requests.
type harness struct {
	t          *testing.T
	root, work string
	req, ack   *os.File
	reqs       chan string
	broker     *testbroker.Broker
	kioskd     *proc
	ingest     *proc
	signer     *proc
	code       string
	prelude    string
}

func newHarness(t *testing.T) *harness {
	root := t.TempDir()
	h := &harness{t: t, root: root, work: filepath.Join(root, "work"), reqs: make(chan string)}
	if err := os.MkdirAll(h.work, 0o755); err != nil {
		t.Fatal(err)
	}
	hdir := filepath.Join(root, "harness")
	os.Mkdir(hdir, 0o700)
	for _, name := range []string{"req", "ack"} {
		if err := syscall.Mkfifo(filepath.Join(hdir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	// Read-write opens of a FIFO never block and never see EOF.
	if h.req, err = os.OpenFile(filepath.Join(hdir, "req"), os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	if h.ack, err = os.OpenFile(filepath.Join(hdir, "ack"), os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.req.Close(); h.ack.Close() })
	go func() {
		sc := bufio.NewScanner(h.req)
		for sc.Scan() {
			h.reqs <- sc.Text()
		}
	}()
	h.prelude = `set -eu
H=` + hdir + `
ask() { echo "$*" > "$H/req"; read -r a < "$H/ack"; [ "$a" = ok ]; }
sudo() { "$@"; }
systemctl() { ask systemctl "$@"; }
kiosk-ingest() { ask ingest "$@"; }
kioskctl() { if [ "${1:-} ${2:-}" = "ca serve" ]; then ask signer "$@"; else command kioskctl "$@"; fi; }
`
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		// Without Mosquitto's clients, the test publishes with the same arguments.
		h.prelude += `mosquitto_pub() { ask mosquitto_pub "$@"; }` + "\n"
	}
	return h
}

var absPath = regexp.MustCompile(`(^|[\s"'=])/(etc|var|run)/`)

// installPackagedConfig puts the configuration the package installs where it
// installs it, for the kiosk of this test: paths below the test directory,
// the simulated reader, no display, no buzzer or LED (no GPIO here).
func (h *harness) installPackagedConfig() {
	h.t.Helper()
	b, err := os.ReadFile("../../systemd/kioskd.toml")
	if err != nil {
		h.t.Fatal(err)
	}
	s := absPath.ReplaceAllString(string(b), "${1}"+h.root+"/${2}/")
	s = regexp.MustCompile(`(?m)^driver = "pn532-spi"`).ReplaceAllString(s, `driver = "sim"`)
	s = regexp.MustCompile(`(?m)^driver = "ssd1306"`).ReplaceAllString(s, `driver = "none"`)
	s = regexp.MustCompile(`(?m)^(buzzer|led) *=.*\n`).ReplaceAllString(s, "")
	p := filepath.Join(h.root, "etc/kioskd/kioskd.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o640); err != nil {
		h.t.Fatal(err)
	}
}

// subst points a README block at the test's world.
func (h *harness) subst(block string) string {
	s := absPath.ReplaceAllString(block, "${1}"+h.root+"/${2}/")
	s = strings.ReplaceAll(s, "mqtt.example.org", "localhost")
	s = strings.ReplaceAll(s, "-g mosquitto ", "")
	if h.broker != nil {
		s = strings.ReplaceAll(s, ":8883", fmt.Sprintf(":%d", h.broker.Port))
		s = strings.ReplaceAll(s, "-p 8883", fmt.Sprintf("-p %d", h.broker.Port))
	}
	if h.code != "" {
		s = strings.ReplaceAll(s, "7K3M-Q9XD", h.code)
	}
	return s
}

// run runs one README block and fails the test if it fails.
func (h *harness) run(block string) {
	h.t.Helper()
	if out, err := h.script(h.subst(block)); err != nil {
		h.t.Fatalf("README block failed: %v\n--- block:\n%s--- output:\n%s\n--- kioskd:\n%s", err, block, out, tail(h.kioskd))
	}
}

// script runs a shell script in the work directory, serving its requests.
func (h *harness) script(s string) (string, error) {
	h.t.Helper()
	cmd := exec.Command("bash", "-c", h.prelude+s)
	cmd.Dir = h.work
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			return out.String(), err
		case r := <-h.reqs:
			reply := "ok"
			if err := h.serve(strings.Fields(r)); err != nil {
				fmt.Fprintf(&out, "harness: %s: %v\n", r, err)
				reply = "fail"
			}
			fmt.Fprintln(h.ack, reply)
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			h.t.Fatalf("script hung:\n%s\n%s", s, out.String())
		}
	}
}

// serve does what systemctl (and a service manager at central) would.
func (h *harness) serve(args []string) error {
	switch strings.Join(args[:min(3, len(args))], " ") {
	case "systemctl restart mosquitto":
		conf, err := os.ReadFile(filepath.Join(h.root, "etc/mosquitto/conf.d/kiosk.conf"))
		if err != nil {
			return err
		}
		s := absPath.ReplaceAllString(string(conf), "${1}"+h.root+"/${2}/")
		s = strings.Replace(s, "listener 8883\n", "listener %PORT% 127.0.0.1\n", 1)
		s = regexp.MustCompile(`(?m)^persistence_location .*\n`).ReplaceAllString(s, "") // testbroker sets its own
		if h.broker != nil {
			h.broker.Stop()
		}
		h.broker = testbroker.StartOpts(h.t, testbroker.Opts{Listener: s})
		return nil
	case "systemctl start kioskd":
		h.kioskd = start(h.t, "kioskd", filepath.Join(h.root, "kioskd.log"), "-config", filepath.Join(h.root, "etc/kioskd/kioskd.toml"))
		up := waitfor.Within(15*time.Second, func() bool {
			_, err := h.statusErr()
			return err == nil || h.kioskd.exited()
		})
		switch {
		case h.kioskd.exited():
			return fmt.Errorf("kioskd exited:\n%s", h.kioskd.logText())
		case !up:
			return fmt.Errorf("kioskd did not answer")
		}
		return nil
	case "systemctl stop kioskd":
		h.kioskd.stop(syscall.SIGTERM)
		return nil
	case "systemctl reload mosquitto":
		h.broker.Reload()
		return nil
	}
	switch args[0] {
	case "ingest":
		// A service runs elsewhere than the script: its relative paths are the work directory's.
		iargs := append([]string(nil), args[1:]...)
		for i := 1; i < len(iargs); i++ {
			if (strings.HasPrefix(iargs[i-1], "-tls-") || iargs[i-1] == "-config-pub") && !filepath.IsAbs(iargs[i]) {
				iargs[i] = filepath.Join(h.work, iargs[i])
			}
		}
		h.ingest = start(h.t, "kiosk-ingest", filepath.Join(h.root, "ingest.log"), iargs...)
		return nil
	case "signer":
		sargs := append([]string(nil), args[1:]...)
		for i := 1; i < len(sargs); i++ {
			if sargs[i-1] == "-dir" && !filepath.IsAbs(sargs[i]) {
				sargs[i] = filepath.Join(h.work, sargs[i])
			}
		}
		h.signer = start(h.t, "kioskctl", filepath.Join(h.root, "signer.log"), sargs...)
		return nil
	case "mosquitto_pub":
		return h.publish(args[1:])
	}
	return fmt.Errorf("the test does not know %q", args)
}

// publish is mosquitto_pub for the options the README uses.
func (h *harness) publish(args []string) error {
	opt := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if strings.HasPrefix(args[i], "-") && args[i] != "-r" {
			opt[args[i]] = args[i+1]
			i++
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(h.work, opt["--cert"]), filepath.Join(h.work, opt["--key"]))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(h.work, opt["--cafile"]))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	payload, err := os.ReadFile(filepath.Join(h.work, opt["-f"]))
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("ssl://%s:%s", opt["-h"], opt["-p"])).
		SetClientID("readme-pub").SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Publish(opt["-t"], 1, true, bytes.TrimSpace(payload))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("publish: %v", tok.Error())
	}
	return nil
}

type provStatus struct {
	OK                bool     `json:"ok"`
	Pending           int      `json:"pending"`
	MQTT              string   `json:"mqtt"`
	EventID           string   `json:"eventId"`
	Provisioned       bool     `json:"provisioned"`
	PairingCode       string   `json:"pairingCode"`
	CertExpiresInDays *int     `json:"certExpiresInDays"`
	ConfigSerial      int64    `json:"configSerial"`
	ConfigsRejected   int64    `json:"configsRejected"`
	Warnings          []string `json:"warnings"`
}

func (h *harness) socket() string { return filepath.Join(h.root, "run/kioskd/control.sock") }

func (h *harness) statusErr() (provStatus, error) { return statusAt(h.socket()) }

func statusAt(sock string) (provStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	line, err := control.Call(ctx, sock, control.Request{Op: "status"})
	if err != nil {
		return provStatus{}, err
	}
	var s provStatus
	err = json.Unmarshal(line, &s)
	return s, err
}

func (h *harness) status() provStatus {
	h.t.Helper()
	s, err := h.statusErr()
	if err != nil {
		h.t.Fatalf("status: %v\n%s", err, tail(h.kioskd))
	}
	return s
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	if !waitfor.Within(waitfor.Timeout, cond) {
		h.t.Fatalf("timed out waiting for %s\nstatus: %+v\nkioskd:\n%s\ningest:\n%s", what, h.status(), tail(h.kioskd), tail(h.ingest))
	}
}

func (h *harness) tap(chip, want string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := control.Call(ctx, h.socket(), control.Request{Op: "tap", ChipNumber: chip})
	if err != nil {
		h.t.Fatal(err)
	}
	var r tapReply
	json.Unmarshal(line, &r)
	if r.Outcome != want {
		h.t.Fatalf("tap %s: %s, want %s", chip, line, want)
	}
}
