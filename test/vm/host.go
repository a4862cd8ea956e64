package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the ledger kiosk-ingest writes
)

// daemon is a host process the test starts and stops (broker, ingest, NTP).
type daemon struct {
	name string
	argv []string
	log  string
	cmd  *exec.Cmd
	done chan error
}

func (d *daemon) start() error {
	if d.cmd != nil {
		return nil
	}
	f, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("vm: %s: %w", d.name, err)
	}
	defer f.Close()
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: %s: %w", d.name, err)
	}
	d.cmd, d.done = cmd, make(chan error, 1)
	go func() { d.done <- cmd.Wait() }()
	select {
	case err := <-d.done:
		d.cmd = nil
		return fmt.Errorf("vm: %s exited at once (%v): %s", d.name, err, tail(d.log))
	case <-time.After(300 * time.Millisecond):
	}
	return nil
}

func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	syscall.Kill(d.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	d.cmd = nil
}

// central is what runs on the host: Mosquitto and the reference ingest
// with its SQLite ledger. The guest reaches the broker at 10.0.2.2 (qemu's
// user network maps it to the host's loopback).
type central struct {
	port   int
	broker *daemon
	ingest *daemon
	ledger string
}

func newCentral(work, ingestBin string) (*central, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "mosquitto")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	err = os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n", port, dir), 0o644)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	c := &central{port: port, ledger: filepath.Join(work, "ledger.db")}
	c.broker = &daemon{name: "mosquitto", argv: []string{"mosquitto", "-c", conf}, log: filepath.Join(work, "mosquitto.log")}
	c.ingest = &daemon{name: "kiosk-ingest", argv: []string{ingestBin, "-broker", fmt.Sprintf("tcp://127.0.0.1:%d", port),
		"-db", c.ledger, "-enroll-unknown", "-log-level", "warn"}, log: filepath.Join(work, "ingest.log")}
	return c, nil
}

// up starts broker and ingest; down stops both (the kiosk's broker is down).
func (c *central) up() error {
	if err := c.broker.start(); err != nil {
		return err
	}
	return c.ingest.start()
}

func (c *central) down() {
	c.ingest.stop()
	c.broker.stop()
}

// ledgerRow is a checkin central answered.
type ledgerRow struct {
	Seq         int64
	ClockSynced bool
}

// ledgerRows reads the ledger: every checkin of device by id.
func (c *central) ledgerRows(ctx context.Context, device string) (map[string]ledgerRow, error) {
	rows := map[string]ledgerRow{}
	if _, err := os.Stat(c.ledger); err != nil {
		return rows, nil // no ledger yet: nothing answered
	}
	db, err := sql.Open("sqlite", "file:"+c.ledger+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("vm: ledger: %w", err)
	}
	defer db.Close()
	r, err := db.QueryContext(ctx, "SELECT id, seq, clock_synced FROM checkins WHERE device_id = ?", device)
	if err != nil {
		return nil, fmt.Errorf("vm: ledger: %w", err)
	}
	defer r.Close()
	for r.Next() {
		var id string
		var row ledgerRow
		if err := r.Scan(&id, &row.Seq, &row.ClockSynced); err != nil {
			return nil, fmt.Errorf("vm: ledger: %w", err)
		}
		rows[id] = row
	}
	return rows, r.Err()
}

// retainedStatus is the Status the broker keeps for device.
func (c *central) retainedStatus(device string) (map[string]any, error) {
	out, err := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-C", "1", "-W", "10",
		"-t", "kiosk/v1/"+device+"/status").Output()
	if err != nil {
		return nil, fmt.Errorf("vm: retained Status: %w", err)
	}
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("vm: retained Status %q: %w", out, err)
	}
	return st, nil
}

// ntp is chronyd on the host's loopback serving its clock to the guest,
// started with -x: it never adjusts the host's clock.
func newNTP(work string) (*daemon, int, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, 0, err
	}
	dir := filepath.Join(work, "chrony")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("vm: %w", err)
	}
	conf := filepath.Join(dir, "chrony.conf")
	body := strings.Join([]string{
		fmt.Sprintf("port %d", port),
		"bindaddress 127.0.0.1",
		"allow 127.0.0.1",
		"local stratum 8",
		"cmdport 0",
		"pidfile " + filepath.Join(dir, "chronyd.pid"),
		""}, "\n")
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, 0, fmt.Errorf("vm: %w", err)
	}
	d := &daemon{name: "chronyd", argv: []string{"chronyd", "-x", "-d", "-u", "root", "-f", conf}, log: filepath.Join(work, "chronyd.log")}
	return d, port, nil
}

func freeUDPPort() (int, error) {
	for range 50 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}); err == nil {
			c.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("vm: no free UDP port")
}
