package kiosk

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uitpas/tap-kiosk/device"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
)

// How a kiosk finds its way to central:
//
//   - a provisioning bundle in state_dir (bundle.json, written by `kioskctl
//     provision apply` or copied there) gives broker, CA, client certificate
//     and config key; it wins over [mqtt] in the TOML file;
//   - otherwise mqtt.broker (and ca_file, cert_file, key_file, config_key)
//     from the TOML file: a kiosk set up by hand, the demo, tests;
//   - otherwise none: the kiosk runs (taps are queued, the control socket
//     answers) and shows its device id and pairing code until a bundle
//     arrives. It looks for one every bundlePoll, and at once on the control
//     socket's "reload" op.
const (
	bundlePoll    = 3 * time.Second
	certWarnDays  = 30
	certCheckHold = 24 * time.Hour
)

// link is the way to central in use.
type link struct {
	source     string // "bundle" or "config file"
	broker     string
	prefix     string
	fwdOpts    mqttfwd.Opts
	clientCert *x509.Certificate
	configKey  ed25519.PublicKey
	initConfig []byte
	trust      *provisioning.Trust // the bundle's fleet trust (nil: from the config file)
}

// provState is what provisioning decided; guarded by mu, the forwarder
// itself by the uplink proxy.
type provState struct {
	mu        sync.Mutex
	link      *link
	store     *provisioning.ConfigStore
	lastBad   string // bundle file state last refused, not to log it again
	reload    chan chan reloadReply
	configs   chan []byte
	rejected  atomic.Int64
	cfgDrops  atomic.Int64
	reloadErr string
	trustNote string // a trust replacement, shown once in status warnings
}

// reloadReply is the control socket's reply to "reload".
type reloadReply struct {
	OK          bool   `json:"ok"`
	Provisioned bool   `json:"provisioned"`
	Changed     bool   `json:"changed"`
	DeviceID    string `json:"deviceId"`
	Broker      string `json:"broker,omitempty"`
	Error       string `json:"error,omitempty"`
}

// uplinkProxy stands between the core and a forwarder that may come (or be
// replaced) after the core started.
type uplinkProxy struct {
	p atomic.Pointer[mqttfwd.Forwarder]
}

func (u *uplinkProxy) Kick() {
	if f := u.p.Load(); f != nil {
		f.Kick()
	}
}

func (u *uplinkProxy) StatusChanged() {
	if f := u.p.Load(); f != nil {
		f.StatusChanged()
	}
}

// setupIdentity loads or creates the device key and decides the link.
// Called from New before the core exists; returns the event to start with:
// the remote config in force, else local.
func (k *Kiosk) setupIdentity(local device.Event) (device.Event, error) {
	k.prov.reload = make(chan chan reloadReply)
	k.prov.configs = make(chan []byte, 8)
	id, created, err := provisioning.LoadOrCreateIdentity(k.cfg.StateDir, k.cfg.DeviceID, rand.Reader)
	if err != nil {
		return local, fmt.Errorf("kiosk: %w", err)
	}
	k.id = id
	if created {
		k.log.Info("device identity created", "device", id.DeviceID, "pairingCode", id.PairingCode(),
			"file", filepath.Join(k.cfg.StateDir, provisioning.IdentityFile))
	}
	l, err := k.findLink()
	if err != nil {
		return local, err
	}
	if l == nil {
		k.log.Warn("not provisioned: no bundle in state_dir and no mqtt.broker; showing the pairing code",
			"device", id.DeviceID, "pairingCode", id.PairingCode())
		return local, nil
	}
	k.prov.link = l
	return k.openStore(l, local), nil
}

// findLink returns the link the files describe, or nil when there is none.
// A bundle that does not fit this kiosk is logged and skipped.
func (k *Kiosk) findLink() (*link, error) {
	b, err := provisioning.LoadBundle(k.cfg.StateDir)
	switch {
	case err == nil:
		l, err := k.bundleLink(b)
		if err == nil {
			return l, nil
		}
		k.refusedBundle(err)
	case !errors.Is(err, provisioning.ErrNotProvisioned):
		k.refusedBundle(err)
	}
	if k.cfg.MQTT.Broker == "" {
		return nil, nil
	}
	tlsConf, err := tlsConfig(k.cfg.MQTT)
	if err != nil {
		return nil, err
	}
	l := &link{source: "config file", broker: k.cfg.MQTT.Broker, prefix: k.cfg.MQTT.TopicPrefix}
	l.fwdOpts.TLS = tlsConf
	if tlsConf != nil && len(tlsConf.Certificates) > 0 {
		l.clientCert, _ = x509.ParseCertificate(tlsConf.Certificates[0].Certificate[0])
	}
	if k.cfg.MQTT.ConfigKey != "" {
		l.configKey, _ = provisioning.ParseConfigKey(k.cfg.MQTT.ConfigKey) // validated by Load
	}
	return l, nil
}

func (k *Kiosk) bundleLink(b *provisioning.Bundle) (*link, error) {
	pl, err := b.Check(k.id, k.cfg.MQTT.AllowInsecure, k.o.Clock.Now)
	if err != nil {
		return nil, err
	}
	// Another CA or config key than the one pinned is refused: only
	// `kioskctl provision apply -replace-trust` replaces the pin. So is an
	// initial event with the serial of the config in force but other bytes.
	t, _, err := b.CheckState(k.cfg.StateDir, k.id, false)
	if err != nil {
		return nil, err
	}
	if pinned, err := provisioning.LoadTrust(k.cfg.StateDir, k.id); err == nil && pinned == nil {
		if err := provisioning.PinTrust(k.cfg.StateDir, t); err != nil {
			return nil, err
		}
	}
	if k.cfg.MQTT.Broker != "" && k.cfg.MQTT.Broker != pl.Broker {
		k.log.Warn("mqtt.broker of the config file ignored: the provisioning bundle sets the broker",
			"ignored", k.cfg.MQTT.Broker, "broker", pl.Broker)
	}
	l := &link{source: "bundle", broker: pl.Broker, prefix: pl.Prefix, clientCert: pl.ClientCert,
		configKey: pl.ConfigKey, initConfig: pl.Config, trust: &t}
	l.fwdOpts.TLS = pl.TLS
	return l, nil
}

func (k *Kiosk) refusedBundle(err error) {
	path := filepath.Join(k.cfg.StateDir, provisioning.BundleFile)
	state := err.Error()
	if fi, serr := os.Stat(path); serr == nil {
		state = fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	}
	k.prov.mu.Lock()
	again := k.prov.lastBad == state
	k.prov.lastBad, k.prov.reloadErr = state, err.Error()
	k.prov.mu.Unlock()
	if !again {
		k.log.Error("provisioning bundle refused", "file", path, "err", err)
	}
}

// idleBroker is the placeholder forwarder's address; it is never dialled.
const idleBroker = "tcp://unprovisioned.invalid:1883"

// firstForwarder makes the forwarder for the link found at start (so that
// a bad broker URL stops kioskd at once), or, without a link, an idle one
// that is never run: Forwarder() is never nil.
func (k *Kiosk) firstForwarder() error {
	l := k.prov.link
	if l == nil {
		f, err := mqttfwd.New(k.ob, mqttfwd.Opts{Broker: idleBroker, DeviceID: k.cfg.DeviceID})
		if err != nil {
			return fmt.Errorf("kiosk: %w", err)
		}
		k.idleFwd = f
		k.up.p.Store(f)
		return nil
	}
	f, err := k.newForwarder(l)
	if err != nil {
		return err
	}
	k.up.p.Store(f)
	return nil
}

// newForwarder makes the forwarder for l.
func (k *Kiosk) newForwarder(l *link) (*mqttfwd.Forwarder, error) {
	o := l.fwdOpts
	o.Broker, o.Prefix, o.DeviceID = l.broker, l.prefix, k.cfg.DeviceID
	o.Window, o.RetryAfter, o.Clock = k.cfg.MQTT.Window, k.cfg.MQTT.RetryAfter, k.o.Clock
	o.Logger = k.o.Logger.With("part", "mqtt")
	o.OnResult = func(r protocol.Result, known bool) {
		k.core.OnResult(r)
		if k.o.OnResult != nil {
			k.o.OnResult(r, known)
		}
	}
	o.OnConfig = k.onConfig
	o.Status = k.statusPayload
	o.Subscribe = k.renewSubs(l)
	f, err := mqttfwd.New(k.ob, o)
	if err != nil {
		return nil, fmt.Errorf("kiosk: %w", err)
	}
	return f, nil
}

// provisioningScreen is the idle screen until a link exists.
func (k *Kiosk) provisioningScreen() *display.Screen {
	k.prov.mu.Lock()
	l := k.prov.link
	k.prov.mu.Unlock()
	if l != nil {
		return nil
	}
	return &display.Screen{Kind: display.Provisioning, Lang: k.cfg.Display.Lang,
		DeviceID: k.id.DeviceID, Code: k.id.PairingCode()}
}

// runLink owns the forwarder: runs it while a link exists, looks for a
// bundle while there is none, and swaps the link on "reload".
func (k *Kiosk) runLink(ctx context.Context) error {
	poll := k.o.Clock.NewTimer(bundlePoll)
	defer poll.Stop()
	certT := k.o.Clock.NewTimer(certCheckHold)
	defer certT.Stop()
	k.checkCert()
	var (
		fwd    *mqttfwd.Forwarder
		stop   context.CancelFunc
		done   chan error
		failed error
	)
	first := true // New made the first forwarder; later ones are made here
	startFwd := func() {
		defer func() { first = false }()
		k.prov.mu.Lock()
		l := k.prov.link
		k.prov.mu.Unlock()
		if l == nil {
			return
		}
		f := k.up.p.Load()
		if !first || f == k.idleFwd {
			var err error
			if f, err = k.newForwarder(l); err != nil {
				failed = err
				return
			}
		}
		fwd = f
		k.up.p.Store(f)
		var fctx context.Context
		fctx, stop = context.WithCancel(ctx)
		done = make(chan error, 1)
		go func() { done <- f.Run(fctx) }()
		k.log.Info("connecting to central", "broker", l.broker, "from", l.source)
	}
	stopFwd := func() {
		if fwd == nil {
			return
		}
		stop()
		<-done
		fwd, done = nil, nil
	}
	defer stopFwd()
	startFwd()
	// The bundle poll runs only while there is no forwarder: with one, a
	// poll found nothing to do, and a fleet of kiosks in one process woke
	// for it every bundlePoll each.
	polling := true
	for failed == nil {
		if want := fwd == nil; want != polling {
			if polling = want; polling {
				poll.Reset(bundlePoll)
			} else {
				poll.Stop()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			fwd, done = nil, nil
			if err != nil {
				return err
			}
			return nil
		case rc := <-k.prov.reload:
			r, changed := k.reloadLink(ctx)
			if changed {
				stopFwd()
				startFwd()
				k.checkCert()
			}
			rc <- r
		case <-poll.C():
			if fwd == nil {
				poll.Reset(bundlePoll)
				if _, changed := k.reloadLink(ctx); changed {
					startFwd()
					k.checkCert()
				}
			}
		case <-certT.C():
			certT.Reset(certCheckHold)
			k.checkCert()
		}
	}
	return failed
}

// reloadLink reads the bundle again; changed says the link is new.
func (k *Kiosk) reloadLink(ctx context.Context) (reloadReply, bool) {
	r := reloadReply{OK: true, DeviceID: k.cfg.DeviceID}
	b, err := provisioning.LoadBundle(k.cfg.StateDir)
	if errors.Is(err, provisioning.ErrNotProvisioned) {
		k.prov.mu.Lock()
		l := k.prov.link
		k.prov.mu.Unlock()
		r.Provisioned = l != nil
		if l != nil {
			r.Broker = l.broker
		}
		return r, false
	}
	var l *link
	if err == nil {
		l, err = k.bundleLink(b)
	}
	if err != nil {
		k.refusedBundle(err)
		k.prov.mu.Lock()
		r.Provisioned = k.prov.link != nil
		k.prov.mu.Unlock()
		r.OK, r.Error = false, err.Error()
		return r, false
	}
	k.prov.mu.Lock()
	old := k.prov.link
	same := old != nil && old.source == "bundle" && old.broker == l.broker && old.prefix == l.prefix &&
		old.clientCert.Equal(l.clientCert) && old.configKey.Equal(l.configKey)
	replaced := old != nil && old.trust != nil && !old.trust.Same(*l.trust)
	if !same {
		k.prov.link, k.prov.lastBad, k.prov.reloadErr = l, "", ""
	}
	if replaced {
		k.prov.trustNote = "fleet trust replaced (-replace-trust): the bundle brought another CA or config-signing key"
	}
	k.prov.mu.Unlock()
	r.Provisioned, r.Broker, r.Changed = true, l.broker, !same
	if same {
		return r, false
	}
	if replaced {
		k.log.Warn("fleet trust replaced: the new bundle brings another CA or config-signing key (kioskctl provision apply -replace-trust)",
			"device", k.cfg.DeviceID, "broker", l.broker)
	}
	k.log.Info("provisioning bundle applied", "device", k.cfg.DeviceID, "broker", l.broker,
		"certificateUntil", l.clientCert.NotAfter.Format(time.DateOnly))
	if cur, err := k.core.CurrentEvent(ctx); err == nil {
		if ev := k.openStore(l, cur); ev.Serial != cur.Serial {
			if err := k.core.SetEvent(ctx, ev); err != nil && ctx.Err() == nil {
				k.log.Error("event from the bundle not applied", "err", err)
			}
		}
	}
	k.core.SetIdleOverride(k.idleOverride)
	k.core.RefreshIdle(ctx)
	return r, true
}

// checkCert warns, once at start and daily, when the client certificate
// has less than certWarnDays left.
func (k *Kiosk) checkCert() {
	days, ok := k.certDays()
	if ok && days < certWarnDays {
		k.log.Warn(k.certWarning(days), "daysLeft", days)
	}
}

// certDays is the client certificate's days left, if there is one.
func (k *Kiosk) certDays() (int, bool) {
	k.prov.mu.Lock()
	l := k.prov.link
	k.prov.mu.Unlock()
	if l == nil || l.clientCert == nil {
		return 0, false
	}
	return provisioning.DaysLeft(l.clientCert, k.o.Clock.Now()), true
}

// statusPayload is the core's Status with the certificate's days left.
func (k *Kiosk) statusPayload() protocol.Status {
	s := k.core.Status()
	s.Storage = "ok"
	if f, _ := k.storage.get(); f != nil {
		s.Storage = "fault"
	}
	if fwd := k.up.p.Load(); fwd != nil {
		sub := fwd.Subscription().Subscribed
		s.Subscribed = &sub
	}
	if d, ok := k.certDays(); ok {
		s.CertExpiresInDays = &d
	}
	s.Outcomes = k.ob.Outcomes()
	s.ConfigsRejected = k.prov.rejected.Load()
	if st, err := k.ob.Counts(); err == nil { // the forwarder adds the pending figures
		s.SeqHigh = st.LastSeq
	}
	if !k.started.IsZero() {
		s.UptimeS = int64(k.o.Clock.Now().Sub(k.started) / time.Second)
	}
	return s
}

// reload asks runLink to read the bundle again (the control socket's op).
func (k *Kiosk) reload(ctx context.Context) any {
	rc := make(chan reloadReply, 1)
	select {
	case k.prov.reload <- rc:
	case <-ctx.Done():
		return reloadReply{Error: "kioskd is stopping"}
	}
	select {
	case r := <-rc:
		return r
	case <-ctx.Done():
		return reloadReply{Error: "kioskd is stopping"}
	}
}

// provStatus fills the provisioning part of the control socket's status.
func (k *Kiosk) provStatus(r *StatusReply) {
	k.prov.mu.Lock()
	l, s, bad, note := k.prov.link, k.prov.store, k.prov.reloadErr, k.prov.trustNote
	k.prov.trustNote = ""
	k.prov.mu.Unlock()
	if note != "" {
		r.Warnings = append(r.Warnings, note)
	}
	r.ConfigsRejected = k.prov.rejected.Load()
	if s != nil {
		if c, ok := s.Current(); ok {
			r.ConfigSerial = c.Serial
		}
	}
	if l == nil {
		r.PairingCode = k.id.PairingCode()
		r.Warnings = append(r.Warnings, "not provisioned: pairing code "+k.id.PairingCode())
		if bad != "" {
			r.Warnings = append(r.Warnings, "bundle refused: "+bad)
		}
		return
	}
	r.Provisioned, r.Broker = true, l.broker
	if bad != "" {
		r.Warnings = append(r.Warnings, "bundle refused, the one in force stays: "+bad)
	}
	if d, ok := k.certDays(); ok {
		r.CertExpiresInDays = &d
		if d < certWarnDays {
			r.Warnings = append(r.Warnings, k.certWarning(d))
		}
	}
	if l.configKey == nil {
		r.Warnings = append(r.Warnings, "no config-signing key: remote configs are refused")
	}
}

func (k *Kiosk) brokerForLog() string {
	k.prov.mu.Lock()
	defer k.prov.mu.Unlock()
	if k.prov.link == nil {
		return "none (not provisioned)"
	}
	return k.prov.link.broker
}
