package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// disk modes of nbdkit's cache filter in front of the raw image.
const (
	honest = "writeback" // flushes write the cache through (fdatasync on the host)
	lying  = "unsafe"    // flushes acknowledged, never done: the control
)

// qemuSystem is how one guest architecture boots: the emulator, its
// machine and processor, and the serial console the kernel writes to.
type qemuSystem struct {
	bin     string
	machine []string
	console string
}

// qemuFor holds the architectures the suite boots. arm64 is the Pi's
// (virt with -cpu max; pauth-impdef: the pointer authentication of the
// emulated processor costs far less to emulate, same instructions).
var qemuFor = map[string]qemuSystem{
	"amd64": {bin: "qemu-system-x86_64", machine: []string{"-machine", "q35", "-cpu", "max"}, console: "ttyS0"},
	"arm64": {bin: "qemu-system-aarch64", machine: []string{"-machine", "virt", "-cpu", "max,pauth-impdef=on"}, console: "ttyAMA0"},
}

// machine is one boot of the VM: nbdkit serving the disk and qemu on it.
type machine struct {
	name      string
	nbd, qemu *exec.Cmd
	nbdDone   chan error
	qemuDone  chan error
	agent     int // host port of the agent's /exec
	ctl       int // host port spliced to the control socket
	booted    time.Duration
}

// bootOpts: the disk's cache mode and the RTC's base ("utc" or a date).
type bootOpts struct {
	cache string
	rtc   string
}

// bootMachine starts nbdkit and qemu and waits for the agent to answer.
func (h *harness) bootMachine(name string, bo bootOpts) (*machine, error) {
	m := &machine{name: name, nbdDone: make(chan error, 1), qemuDone: make(chan error, 1)}
	h.mu.Lock()
	h.cur = m // killed on SIGINT or SIGTERM, also while it boots
	h.mu.Unlock()
	sock := filepath.Join(h.work, "nbd.sock")
	os.Remove(sock)
	tmp := filepath.Join(h.work, "nbdtmp")
	os.MkdirAll(tmp, 0o700)
	nlog, err := os.Create(filepath.Join(h.work, name+".nbdkit.log"))
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer nlog.Close()
	// The cache filter keeps what the guest wrote and did not flush in a
	// deleted temporary file: gone when nbdkit is killed, as a disk's
	// volatile cache is gone when the power is.
	m.nbd = exec.Command("nice", "-n", "19", "nbdkit", "-f", "-U", sock, "--filter=cache",
		"file", h.disk, "cache="+bo.cache)
	m.nbd.Env = append(os.Environ(), "TMPDIR="+tmp)
	m.nbd.Stdout, m.nbd.Stderr = nlog, nlog
	if err := m.nbd.Start(); err != nil {
		return nil, fmt.Errorf("vm: nbdkit: %w", err)
	}
	go func() { m.nbdDone <- m.nbd.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 100 {
			m.kill()
			return nil, fmt.Errorf("vm: nbdkit made no socket: %s", tail(filepath.Join(h.work, name+".nbdkit.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m.agent, err = freePort(); err != nil {
		m.kill()
		return nil, err
	}
	if m.ctl, err = freePort(); err != nil {
		m.kill()
		return nil, err
	}
	serial := filepath.Join(h.work, name+".serial.log")
	qs := qemuFor[h.arch]
	args := append([]string{"-n", "19", qs.bin}, qs.machine...)
	args = append(args, "-accel", "tcg", "-smp", "2", "-m", "1024",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-kernel", h.kernel, "-initrd", h.initrd,
		"-append", "root=/dev/vda rw console="+qs.console+" quiet fsck.mode=skip panic=-1 systemd.show_status=false",
		// cache=none: qemu keeps nothing itself and shows the guest a
		// write cache, so the guest's flushes reach nbdkit.
		"-drive", "file=nbd+unix:///?socket="+sock+",format=raw,if=virtio,cache=none",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:7000,hostfwd=tcp:127.0.0.1:%d-:7001", m.agent, m.ctl),
		"-device", "virtio-net-pci,netdev=n0",
		"-rtc", "base="+bo.rtc,
		"-serial", "file:"+serial)
	m.qemu = exec.Command("nice", args...)
	qlog, err := os.Create(filepath.Join(h.work, name+".qemu.log"))
	if err != nil {
		m.kill()
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer qlog.Close()
	m.qemu.Stdout, m.qemu.Stderr = qlog, qlog
	start := time.Now()
	if err := m.qemu.Start(); err != nil {
		m.kill()
		return nil, fmt.Errorf("vm: qemu: %w", err)
	}
	go func() { m.qemuDone <- m.qemu.Wait() }()
	deadline := time.Now().Add(h.bootTimeout)
	for {
		select {
		case err := <-m.qemuDone:
			m.qemuDone <- err
			m.kill()
			return nil, fmt.Errorf("vm: %s: qemu exited during boot (%v): %s", name, err, tail(serial))
		default:
		}
		if m.ping() {
			break
		}
		if time.Now().After(deadline) {
			m.kill()
			return nil, fmt.Errorf("vm: %s: no agent within %s: %s", name, h.bootTimeout, tail(serial))
		}
		time.Sleep(time.Second)
	}
	m.booted = time.Since(start)
	return m, nil
}

func (m *machine) ping() bool {
	c := http.Client{Timeout: 2 * time.Second}
	r, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", m.agent))
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == http.StatusOK
}

// cut is the power cut: qemu and nbdkit SIGKILLed together, so what the
// guest had in RAM and what nbdkit's cache held unflushed are both gone.
func (m *machine) cut() {
	m.kill()
}

func (m *machine) kill() {
	if m.qemu != nil && m.qemu.Process != nil {
		syscall.Kill(m.qemu.Process.Pid, syscall.SIGKILL)
	}
	if m.nbd != nil && m.nbd.Process != nil {
		syscall.Kill(m.nbd.Process.Pid, syscall.SIGKILL)
	}
	if m.qemu != nil && m.qemu.Process != nil {
		<-m.qemuDone
	}
	if m.nbd != nil && m.nbd.Process != nil {
		<-m.nbdDone
	}
	m.qemu, m.nbd = nil, nil
}

// run runs script with sh as root in the guest.
func (m *machine) run(timeout time.Duration, script string) (string, int, error) {
	c := http.Client{Timeout: timeout + 30*time.Second}
	u := fmt.Sprintf("http://127.0.0.1:%d/exec?timeout=%s", m.agent, url.QueryEscape(timeout.String()))
	r, err := c.Post(u, "text/plain", strings.NewReader(script))
	if err != nil {
		return "", 0, fmt.Errorf("vm: exec: %w", err)
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", 0, fmt.Errorf("vm: exec: %w", err)
	}
	if r.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("vm: exec: %s: %s", r.Status, body)
	}
	var rep struct {
		RC  int    `json:"rc"`
		Out string `json:"out"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return "", 0, fmt.Errorf("vm: exec: %w", err)
	}
	return rep.Out, rep.RC, nil
}

// sh runs script and wants exit 0; the output trimmed.
func (m *machine) sh(script string) (string, error) {
	out, rc, err := m.run(3*time.Minute, script)
	if err != nil {
		return out, err
	}
	if rc != 0 {
		return out, fmt.Errorf("vm: %q: exit %d: %s", firstLine(script), rc, strings.TrimSpace(out))
	}
	return strings.TrimSpace(out), nil
}

// control opens a connection to kioskd's control socket through the agent.
func (m *machine) control() (*ctlConn, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.ctl), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("vm: control: %w", err)
	}
	return newCtlConn(c), nil
}

// waitActive waits until kioskd is active and answers status.
func (m *machine) waitActive(d time.Duration) (status, error) {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		out, _, err := m.run(30*time.Second, "systemctl is-active kioskd")
		if err == nil && strings.TrimSpace(out) == "active" {
			st, err := m.status()
			if err == nil {
				return st, nil
			}
			last = err
		} else {
			last = fmt.Errorf("kioskd %s %v", strings.TrimSpace(out), err)
		}
		time.Sleep(time.Second)
	}
	return status{}, fmt.Errorf("vm: kioskd not active within %s: %v", d, last)
}

func (m *machine) status() (status, error) {
	c, err := m.control()
	if err != nil {
		return status{}, err
	}
	defer c.Close()
	return c.status()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("vm: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// waitFor polls f until it returns true or d passes.
func waitFor(ctx context.Context, d time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(d)
	var last error
	for {
		ok, err := f()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("condition not met")
			}
			return fmt.Errorf("vm: after %s: %w", d, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
