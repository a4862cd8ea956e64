// Package kiosk assembles one kiosk from its configuration: reader, core,
// outbox, forwarder, display and control socket. kioskd runs one; the demo
// and the fleet simulator run many in one process, so nothing here is global.
package kiosk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/device"
	"github.com/uitpas/tap-kiosk/device/host"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
	"github.com/uitpas/tap-kiosk/reader"
)

// Opts are what the caller injects.
type Opts struct {
	Version string
	Logger  *slog.Logger
	Clock   clock.Clock
	// Jitter is a number in [0, 1) that spreads a fleet's retries (the
	// certificate renewal's); nil: math/rand/v2's.
	Jitter func() float64
	Host   device.Host
	// Stdout receives the terminal display.
	Stdout io.Writer
	// OnReady is called once reader, queue, display and control socket are up.
	OnReady func()
	// OnTick is called from the tap loop (the systemd watchdog).
	OnTick func()
	// OnResult, when set, also sees every Result from central (the fleet
	// simulator measures Result latency with it).
	OnResult func(r protocol.Result, known bool)
	// Display, when set, replaces the configured display output (tests
	// drive an SSD1306 over a fake bus this way).
	Display display.Display
	// Indicator, when set, replaces the buzzer and LED (tests record the
	// signals this way).
	Indicator display.Indicator
}

// Kiosk is one assembled kiosk.
type Kiosk struct {
	cfg       provisioning.Config
	o         Opts
	log       *slog.Logger
	ob        *queue.Outbox
	core      *device.Core
	id        *provisioning.Identity
	prov      provState          // provision.go
	up        uplinkProxy        // the forwarder
	idleFwd   *mqttfwd.Forwarder // stands in until there is a link; never run
	rd        reader.Reader
	pres      reader.Presenter
	disp      display.Display
	ind       display.Indicator
	halt      []func() error // hardware to release at the end, in order
	health    []func() error // display health
	indHealth func() error   // buzzer and LED health
	gate      gateOutbox     // the outbox as the core sees it (storage.go)
	storage   storageState   // storage.go
	renew     renewState     // renew.go
	stopped   chan struct{}  // closed when Run returns
	started   time.Time      // when Run began (Status uptimeS)
	ctl       *control.Server
}

// New builds a kiosk. Nothing runs until Run. An error names the file,
// device or key that is wrong; whatever was opened before it is released.
func New(cfg provisioning.Config, o Opts) (*Kiosk, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Jitter == nil {
		o.Jitter = mrand.Float64
	}
	if o.Host == nil {
		o.Host = host.New()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	k := &Kiosk{cfg: cfg, o: o, log: o.Logger, stopped: make(chan struct{})}
	if err := k.build(); err != nil {
		k.release()
		return nil, err
	}
	return k, nil
}

func (k *Kiosk) build() error {
	cfg, o := k.cfg, k.o
	if err := checkStateDir(cfg.StateDir, k.log); err != nil {
		return err
	}
	if err := k.openQueue(); err != nil {
		return err
	}
	if err := k.openReader(); err != nil {
		return err
	}
	if err := k.openDisplay(); err != nil {
		return err
	}
	ev, err := localEvent(cfg.Event)
	if err != nil {
		return err
	}
	if ev, err = k.setupIdentity(ev); err != nil {
		return err
	}
	k.core = device.New(device.Opts{DeviceID: cfg.DeviceID, Version: o.Version, Event: ev,
		Debounce: cfg.Tap.Debounce, Hold: cfg.Tap.Hold, Location: cfg.Location(), Lang: cfg.Display.Lang,
		Clock: o.Clock, Host: o.Host, Logger: o.Logger.With("part", "core"), OnTick: o.OnTick,
		AwaitResult: cfg.Tap.AwaitResult, Linked: k.linked, Pages: k.screenPages()}, &k.gate, k.disp, k.ind)
	k.core.SetDisplayHealth(func() error {
		for _, h := range k.health {
			if err := h(); err != nil {
				return err
			}
		}
		return nil
	})
	if k.indHealth != nil {
		k.core.SetIndicatorHealth(k.indHealth)
	}
	k.core.SetIdleOverride(k.idleOverride)
	if err := k.firstForwarder(); err != nil {
		return err
	}
	k.core.SetUplink(&k.up)
	return nil
}

// checkStateDir makes sure state_dir is a directory kioskd can write: a
// file in its place, a read-only mount or another owner would otherwise
// surface as SQLite's "unable to open database file".
func checkStateDir(dir string, log *slog.Logger) error {
	if err := ownDir(dir, "state_dir", log); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("kiosk: state_dir %s: not writable by this user (uid %d): %w", dir, os.Getuid(), unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("kiosk: state_dir %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the *PathError's own path (the message names it already).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// localEvent turns the [event] table into the core's event.
func localEvent(e provisioning.EventConfig) (device.Event, error) {
	ev := device.Event{ID: e.ID, Title: e.Title, CounterID: e.CounterID, Points: e.Points, Period: e.Period,
		Volume: e.Volume, CheckinCode: e.CheckinCode, Blocked: map[string]bool{}}
	for _, c := range e.BlockedChips {
		ev.Blocked[c] = true
	}
	var err error
	if e.ValidFrom != "" {
		if ev.ValidFrom, err = time.Parse(time.RFC3339, e.ValidFrom); err != nil {
			return ev, fmt.Errorf("kiosk: event.valid_from: %w", err)
		}
	}
	if e.ValidUntil != "" {
		if ev.ValidUntil, err = time.Parse(time.RFC3339, e.ValidUntil); err != nil {
			return ev, fmt.Errorf("kiosk: event.valid_until: %w", err)
		}
	}
	return ev, nil
}

func (k *Kiosk) openReader() error {
	switch k.cfg.Reader.Driver {
	case "sim":
		s := reader.NewSim(k.o.Clock)
		k.rd, k.pres = s, s
		return nil
	}
	return k.openHardwareReader()
}

// tlsConfig builds the client TLS configuration for ssl:// brokers.
func tlsConfig(m provisioning.MQTTConfig) (*tls.Config, error) {
	if !strings.HasPrefix(m.Broker, "ssl://") && !strings.HasPrefix(m.Broker, "tls://") {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if u, err := url.Parse(m.Broker); err == nil {
		conf.ServerName = u.Hostname()
	}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kiosk: mqtt.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kiosk: mqtt.ca_file %s: no PEM certificate in it", m.CAFile)
		}
		conf.RootCAs = pool
	}
	if m.CertFile != "" || m.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kiosk: mqtt.cert_file/key_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// Core returns the kiosk's core (tests and the fleet simulator use it).
func (k *Kiosk) Core() *device.Core { return k.core }

// Outbox returns the kiosk's queue.
func (k *Kiosk) Outbox() *queue.Outbox { return k.ob }

// Forwarder returns the kiosk's MQTT forwarder; while the kiosk is not
// provisioned, an idle one that never connects (never nil).
func (k *Kiosk) Forwarder() *mqttfwd.Forwarder { return k.up.p.Load() }

// Identity returns the kiosk's device identity.
func (k *Kiosk) Identity() *provisioning.Identity { return k.id }

// Presenter returns the reader's card presenter, or nil on real hardware.
func (k *Kiosk) Presenter() reader.Presenter { return k.pres }

// Stopped is closed once Run has returned (the tap loop has finished the tap
// in hand).
func (k *Kiosk) Stopped() <-chan struct{} { return k.stopped }

// Run runs the kiosk until ctx is done, then shuts down in order: the tap in
// hand is finished, the forwarder disconnects, the reader's RF field and the
// display go off, the queue is closed.
func (k *Kiosk) Run(ctx context.Context) error {
	k.started = k.o.Clock.Now()
	defer close(k.stopped)
	defer k.release()
	if k.cfg.Control.Socket != "" {
		if err := ownDir(filepath.Dir(k.cfg.Control.Socket), "control.socket's directory", k.log); err != nil {
			return err
		}
		ctl, err := control.Listen(k.cfg.Control.Socket, k.handle)
		if err != nil {
			return fmt.Errorf("kiosk: %w", err)
		}
		k.ctl = ctl
		defer ctl.Close()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	events := make(chan reader.Event, 16)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("kiosk: %s: %w", name, err)
				}
				errMu.Unlock()
				cancel(err)
			}
		}()
	}
	run("reader", func(ctx context.Context) error { return k.rd.Run(ctx, events) })
	run("core", func(ctx context.Context) error { return k.core.Run(ctx, events) })
	run("mqtt", k.runLink)
	run("config", k.runConfigs)
	run("renew", k.runRenewal)
	if k.ctl != nil {
		run("control", k.ctl.Serve)
	}
	k.log.Info("kiosk ready", "device", k.cfg.DeviceID, "reader", k.rd.String(), "display", k.disp.String(),
		"broker", k.brokerForLog(), "pairingCode", k.id.PairingCode())
	if k.o.OnReady != nil {
		k.o.OnReady()
	}
	<-ctx.Done()
	wg.Wait()
	return firstErr
}

// release halts hardware and closes the queue, once.
func (k *Kiosk) release() {
	if k.disp != nil {
		if err := k.disp.Halt(); err != nil {
			k.log.Warn("display halt", "err", err)
		}
		k.disp = nil
	}
	for i := len(k.halt) - 1; i >= 0; i-- {
		if err := k.halt[i](); err != nil && !errors.Is(err, queue.ErrClosed) {
			k.log.Warn("release", "err", err)
		}
	}
	k.halt = nil
}
