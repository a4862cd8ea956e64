package kiosk

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/internal/ratelog"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
)

// Renewal without a visit. A kiosk provisioned with a bundle renews its
// client certificate from renewBefore ahead of its expiry, over its own
// authenticated link: it publishes a CSR for the key it already has on
// P/D/csr (protocol.RenewRequest) and central's signer (`kioskctl ca
// serve`) answers on P/D/cert. The kiosk takes the answer only when the
// certificate chains to the CA of its bundle (the fleet trust pinned at
// provisioning), has its device id as CN, is for its own key and lasts
// longer than the one in force; it then writes the bundle with the new
// certificate (atomically: the old bundle stays until the new one is in
// place) and reconnects with it, as after `kioskctl reload`. Without an
// answer it asks again after renewRetryMin, doubling up to renewRetryMax
// (daily), jittered; garbage on P/D/cert is logged and dropped. A kiosk
// set up by hand (certificates in the TOML file) does not renew: it warns.
const (
	renewBefore   = certWarnDays * 24 * time.Hour
	renewRetryMin = time.Hour
	renewRetryMax = 24 * time.Hour
	// renewOffline is how often a kiosk that is due but has no session
	// tries again. It paces attempts against the network, not the
	// calendar, so it runs on real time (as mqttfwd's reconnects).
	renewOffline   = 5 * time.Second
	renewBadLog    = time.Minute
	renewReplies   = 4
	renewClockSkew = time.Hour // a new certificate may start this far ahead of our clock
)

// renewState is the renewal's state; the goroutine runRenewal owns the
// schedule, the forwarder's handler only hands replies over.
type renewState struct {
	once    sync.Once
	replies chan []byte
	kick    chan struct{}
	badLog  *ratelog.Limiter
	offline time.Duration // renewOffline; tests shorten it

	mu       sync.Mutex
	asked    int    // requests sent since the certificate in force was taken
	dropped  int    // replies dropped: garbage, or a certificate not fit for this kiosk
	lastCode string // the signer's last refusal, for status
}

func (r *renewState) init() {
	r.replies = make(chan []byte, renewReplies)
	r.kick = make(chan struct{}, 1)
	r.badLog = ratelog.New(renewBadLog)
	if r.offline == 0 {
		r.offline = renewOffline
	}
}

// onReply runs on paho's goroutine: hand over, never block (a flood of
// replies is dropped beyond a few).
func (r *renewState) onReply(p []byte) {
	select {
	case r.replies <- append([]byte(nil), p...):
	default:
	}
}

func (r *renewState) drop() {
	r.mu.Lock()
	r.dropped++
	r.mu.Unlock()
}

func (r *renewState) kickNow() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// renewSubs is the forwarder's extra subscription for link l (P/D/cert),
// none for a link that cannot renew. A new forwarder is a new link: the
// renewal looks at it at once.
func (k *Kiosk) renewSubs(l *link) []mqttfwd.Sub {
	k.renew.once.Do(k.renew.init)
	k.renew.kickNow()
	if l.source != "bundle" || l.clientCert == nil {
		return nil
	}
	return []mqttfwd.Sub{{Topic: protocol.Topic(l.prefix, k.cfg.DeviceID, protocol.KindCert), Handle: k.renew.onReply}}
}

// renewable is the link in force when it is a bundle's with a certificate.
func (k *Kiosk) renewable() *link {
	k.prov.mu.Lock()
	l := k.prov.link
	k.prov.mu.Unlock()
	if l == nil || l.source != "bundle" || l.clientCert == nil {
		return nil
	}
	return l
}

// runRenewal asks for a new certificate while one is due, and takes the
// answers. It runs for the kiosk's life.
func (k *Kiosk) runRenewal(ctx context.Context) error {
	k.renew.once.Do(k.renew.init)
	r := &k.renew
	clk := k.o.Clock
	t := clk.NewTimer(time.Hour)
	defer t.Stop()
	var offline *time.Timer // real time, while due and without a session
	stopOffline := func() {
		if offline != nil {
			offline.Stop()
			offline = nil
		}
	}
	defer stopOffline()
	var nextAsk time.Time // when to ask again (zero: at once when due)
	tries := 0
	schedule := func() {
		stopOffline()
		l := k.renewable()
		if l == nil {
			t.Reset(renewRetryMax)
			return
		}
		now := clk.Now()
		due := l.clientCert.NotAfter.Add(-renewBefore)
		if now.Before(due) {
			// Not due: look again then, and daily (the clock may be set).
			t.Reset(min(due.Sub(now), renewRetryMax))
			return
		}
		if now.Before(nextAsk) {
			t.Reset(nextAsk.Sub(now))
			return
		}
		err := k.askRenewal(l)
		switch {
		case errors.Is(err, mqttfwd.ErrOffline):
			offline = time.NewTimer(r.offline)
			t.Reset(renewRetryMax)
			return
		case err != nil:
			k.log.Warn("certificate renewal: request not sent; trying again later", "err", err)
		}
		tries++
		d := min(renewRetryMax, renewRetryMin<<min(tries-1, 5))
		d = time.Duration(float64(d) * (0.75 + k.o.Jitter()/2)) // spread a fleet's requests
		nextAsk = now.Add(d)
		t.Reset(d)
	}
	schedule()
	for {
		var offC <-chan time.Time
		if offline != nil {
			offC = offline.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			schedule()
		case <-offC:
			offline = nil
			schedule()
		case <-r.kick:
			schedule()
		case p := <-r.replies:
			if k.takeReply(ctx, p) {
				tries, nextAsk = 0, time.Time{}
				r.mu.Lock()
				r.asked, r.lastCode = 0, ""
				r.mu.Unlock()
			}
			schedule()
		}
	}
}

// askRenewal publishes a CSR for the device key on P/D/csr.
func (k *Kiosk) askRenewal(l *link) error {
	fwd := k.up.p.Load()
	if fwd == nil || fwd == k.idleFwd {
		return mqttfwd.ErrOffline
	}
	csr, err := k.id.CSR(rand.Reader)
	if err != nil {
		return err
	}
	topic := protocol.Topic(l.prefix, k.cfg.DeviceID, protocol.KindCSR)
	if err := fwd.Publish(topic, protocol.RenewRequest{CSR: string(csr)}.Encode()); err != nil {
		return err
	}
	k.renew.mu.Lock()
	k.renew.asked++
	n := k.renew.asked
	k.renew.mu.Unlock()
	k.log.Info("certificate renewal: asked central for a new certificate", "topic", topic, "request", n,
		"daysLeft", provisioning.DaysLeft(l.clientCert, k.o.Clock.Now()), "serial", l.clientCert.SerialNumber.Text(16))
	return nil
}

// takeReply handles a payload from P/D/cert; it reports whether a new
// certificate was put in force.
func (k *Kiosk) takeReply(ctx context.Context, p []byte) bool {
	r, err := protocol.DecodeRenewReply(p)
	if err != nil {
		k.renew.drop()
		k.renew.badLog.Log(k.log, k.o.Clock.Now(), slog.LevelWarn, "bad", "certificate renewal: a bad reply on the cert topic dropped",
			"bytes", len(p), "err", err)
		return false
	}
	if r.Error != "" {
		k.renew.mu.Lock()
		k.renew.lastCode = r.Error
		k.renew.mu.Unlock()
		k.renew.badLog.Log(k.log, k.o.Clock.Now(), slog.LevelWarn, "refused", "certificate renewal refused by central",
			"code", r.Error, "message", r.Message)
		return false
	}
	l := k.renewable()
	if l == nil {
		k.log.Warn("certificate renewal: a certificate arrived, but this kiosk has no bundle to renew; dropped")
		return false
	}
	b, err := k.renewedBundle(l, []byte(r.Cert))
	if errors.Is(err, errNotNewer) {
		k.log.Debug("certificate renewal: the certificate received is not newer than the one in force", "err", err)
		return false
	}
	if err != nil {
		k.renew.drop()
		k.renew.badLog.Log(k.log, k.o.Clock.Now(), slog.LevelWarn, "unfit", "certificate renewal: the certificate received is refused", "err", err)
		return false
	}
	if err := provisioning.WriteFileAtomic(filepath.Join(k.cfg.StateDir, provisioning.BundleFile), b.Encode(), 0o600); err != nil {
		k.log.Error("certificate renewal: the new bundle could not be written; the old one stays", "err", err)
		return false
	}
	cert, _ := provisioning.ParseCertPEM([]byte(b.ClientCert))
	k.log.Info("certificate renewed: reconnecting with it", "serial", cert.SerialNumber.Text(16),
		"previous", l.clientCert.SerialNumber.Text(16), "until", cert.NotAfter.Format(time.DateOnly))
	rep, _ := k.reload(ctx).(reloadReply)
	if !rep.OK || !rep.Changed {
		k.log.Error("certificate renewal: kioskd did not take the renewed bundle", "err", rep.Error)
		return false
	}
	return true
}

var errNotNewer = errors.New("kiosk: renewal: not newer than the certificate in force")

// renewedBundle is the bundle in force with certPEM as its client
// certificate, checked as a bundle is: for this device and key, chained to
// the bundle's CA, and that CA the one pinned (CheckState); and then valid
// now and longer than the one in force.
func (k *Kiosk) renewedBundle(l *link, certPEM []byte) (*provisioning.Bundle, error) {
	b, err := provisioning.LoadBundle(k.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cur, err := provisioning.ParseCertPEM([]byte(b.ClientCert))
	if err != nil || !cur.Equal(l.clientCert) {
		return nil, errors.New("kiosk: renewal: the bundle on disk is not the one in force (a reload is due); dropped")
	}
	nb := *b
	nb.ClientCert = string(certPEM)
	nl, err := nb.Check(k.id, k.cfg.MQTT.AllowInsecure, k.o.Clock.Now)
	if err != nil {
		return nil, err
	}
	if _, _, err := nb.CheckState(k.cfg.StateDir, k.id, false); err != nil {
		return nil, err
	}
	c := nl.ClientCert
	now := k.o.Clock.Now()
	switch {
	case bytes.Equal(c.Raw, cur.Raw) || !c.NotAfter.After(cur.NotAfter):
		return nil, fmt.Errorf("%w (serial %s until %s)", errNotNewer, c.SerialNumber.Text(16), c.NotAfter.Format(time.DateOnly))
	case !now.Before(c.NotAfter):
		return nil, fmt.Errorf("kiosk: renewal: the certificate expired on %s", c.NotAfter.Format(time.DateOnly))
	case c.NotBefore.After(now.Add(renewClockSkew)):
		return nil, fmt.Errorf("kiosk: renewal: the certificate starts on %s, ahead of this kiosk's clock", c.NotBefore.Format(time.RFC3339))
	}
	return &nb, nil
}

// certWarning is the status warning for a certificate with days left.
func (k *Kiosk) certWarning(days int) string {
	if k.renewable() == nil {
		return fmt.Sprintf("client certificate expires in %d days: provision again (a kiosk set up by hand does not renew)", days)
	}
	k.renew.mu.Lock()
	asked, code := k.renew.asked, k.renew.lastCode
	k.renew.mu.Unlock()
	s := fmt.Sprintf("client certificate expires in %d days: renewing (asked central %d times", days, asked)
	if code != "" {
		s += ", last refused: " + code
	}
	return s + "); without an answer (kioskctl ca serve at central), provision again"
}
