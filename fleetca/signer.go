package fleetca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/ratelog"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// SignerOpts configure the renewal signer (`kioskctl ca serve`).
type SignerOpts struct {
	Broker string      // ssl://host:8883
	TLS    *tls.Config // the signer's client certificate (role signer) and the fleet CA
	// ClientID defaults to the certificate's CN (the broker makes it so
	// anyway: use_username_as_clientid).
	ClientID string
	Prefix   string        // default protocol.DefaultPrefix
	Days     int           // validity of renewed certificates; 0: provisioning.DefaultCertDays
	Window   time.Duration // see CA.Renew; 0: RenewWindow
	// MinInterval is the least time between two requests of one device
	// that are answered (a kiosk asks at most hourly; more is dropped and
	// logged); 0: 10 s, negative: no limit.
	MinInterval time.Duration
	Logger      *slog.Logger
}

// Signer answers kiosks' renewal requests: it reads P/+/csr and answers on
// P/D/cert. It holds the CA key, so it runs at central only.
type Signer struct {
	ca     *CA
	o      SignerOpts
	log    *slog.Logger
	reqs   chan request
	mu     sync.Mutex
	last   map[string]time.Time // device → when its last request was answered
	drops  *ratelog.Limiter
	client mqtt.Client
	ready  chan struct{}
	once   sync.Once
}

type request struct {
	device  string
	payload []byte
}

// NewSigner checks the options.
func NewSigner(ca *CA, o SignerOpts) (*Signer, error) {
	if o.Broker == "" {
		return nil, errors.New("fleetca: signer: no broker")
	}
	if o.Prefix == "" {
		o.Prefix = protocol.DefaultPrefix
	}
	if o.MinInterval == 0 {
		o.MinInterval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClientID == "" && o.TLS != nil && len(o.TLS.Certificates) > 0 {
		if leaf := o.TLS.Certificates[0].Leaf; leaf != nil {
			o.ClientID = leaf.Subject.CommonName
		}
	}
	if o.ClientID == "" {
		o.ClientID = provisioning.DefaultSignerID
	}
	return &Signer{ca: ca, o: o, log: o.Logger, reqs: make(chan request, 256), last: map[string]time.Time{},
		drops: ratelog.New(time.Minute), ready: make(chan struct{})}, nil
}

// Ready is closed once the signer has subscribed to the CSR topic for the
// first time.
func (s *Signer) Ready() <-chan struct{} { return s.ready }

// Run connects (retrying), answers requests until ctx is done, then
// disconnects. Its session is persistent: requests sent while it was away
// are delivered when it is back.
func (s *Signer) Run(ctx context.Context) error {
	topic := s.o.Prefix + "/+/" + protocol.KindCSR
	opts := mqtt.NewClientOptions().AddBroker(s.o.Broker).SetClientID(s.o.ClientID).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).SetMaxReconnectInterval(30 * time.Second).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			t := c.Subscribe(topic, 1, s.onMessage)
			if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				s.log.Error("signer: subscribe failed", "topic", topic, "err", t.Error())
				return
			}
			s.log.Info("signer: connected, answering renewal requests", "broker", s.o.Broker, "topic", topic)
			s.once.Do(func() { close(s.ready) })
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { s.log.Warn("signer: connection lost", "err", err) })
	if s.o.TLS != nil {
		opts.SetTLSConfig(s.o.TLS)
	}
	s.client = mqtt.NewClient(opts)
	s.client.Connect()
	defer s.client.Disconnect(250)
	s.checkCRL()
	daily := time.NewTicker(24 * time.Hour)
	defer daily.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-daily.C:
			s.checkCRL()
		case r := <-s.reqs:
			s.answer(r)
		}
	}
}

// onMessage runs on paho's router: it only hands the request over.
func (s *Signer) onMessage(_ mqtt.Client, m mqtt.Message) {
	dev, err := protocol.RenewTopicDevice(s.o.Prefix, m.Topic(), protocol.KindCSR)
	if err != nil {
		s.drops.Log(s.log, time.Now(), slog.LevelWarn, "topic", "signer: message on an unexpected topic dropped", "topic", m.Topic())
		return
	}
	select {
	case s.reqs <- request{device: dev, payload: m.Payload()}:
	default:
		s.drops.Log(s.log, time.Now(), slog.LevelWarn, "full", "signer: too many requests at once; dropped (the kiosk asks again)", "device", dev)
	}
}

func (s *Signer) answer(r request) {
	now := s.ca.now()
	s.mu.Lock()
	last, seen := s.last[r.device]
	limited := s.o.MinInterval > 0 && seen && now.Sub(last) < s.o.MinInterval
	if !limited {
		s.last[r.device] = now
	}
	s.mu.Unlock()
	if limited {
		s.drops.Log(s.log, now, slog.LevelWarn, "rate", "signer: a device asks too often; request dropped", "device", r.device)
		return
	}
	reply := s.Handle(r.device, r.payload)
	t := s.client.Publish(protocol.Topic(s.o.Prefix, r.device, protocol.KindCert), 1, false, reply.Encode())
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		s.log.Warn("signer: answer not confirmed by the broker (the kiosk asks again)", "device", r.device, "err", t.Error())
	}
}

// Handle decides one request of device (the D of P/D/csr, which the
// broker's ACL guarantees is the sender) and returns the answer. It is
// what Run does with each request, without a broker.
func (s *Signer) Handle(device string, payload []byte) protocol.RenewReply {
	refuse := func(code string, err error) protocol.RenewReply {
		s.log.Warn("signer: renewal refused", "device", device, "code", code, "err", err)
		msg := err.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return protocol.RenewReply{Error: code, Message: msg}
	}
	req, err := protocol.DecodeRenewRequest(payload)
	if err != nil {
		return refuse(protocol.RenewBadRequest, err)
	}
	csr, err := provisioning.ParseCSR([]byte(req.CSR))
	if err != nil {
		return refuse(protocol.RenewBadRequest, err)
	}
	rn, err := s.ca.Renew(device, csr, s.o.Days, s.o.Window)
	switch {
	case errors.Is(err, provisioning.ErrWrongDevice):
		return refuse(protocol.RenewBadRequest, err)
	case errors.Is(err, ErrRevoked):
		return refuse(protocol.RenewRevoked, err)
	case errors.Is(err, ErrNoLiveCertificate):
		return refuse(protocol.RenewNoCertificate, err)
	case errors.Is(err, ErrKeyMismatch):
		return refuse(protocol.RenewKeyMismatch, err)
	case err != nil:
		s.log.Error("signer: renewal failed", "device", device, "err", err)
		return protocol.RenewReply{Error: protocol.RenewUnavailable, Message: "the signer could not sign now; ask again later"}
	}
	if rn.Issued {
		s.log.Info("signer: certificate renewed", "device", device, "serial", rn.Record.Serial,
			"until", rn.Record.NotAfter.Format(time.DateOnly), "previous", rn.Prev.Serial)
	} else {
		s.log.Info("signer: current certificate sent again (not due yet)", "device", device, "serial", rn.Record.Serial,
			"daysLeft", rn.Record.DaysLeft(s.ca.now()))
	}
	return protocol.RenewReply{Cert: string(rn.Cert)}
}

// checkCRL warns when the CA directory's CRL is missing or expires within
// a month.
func (s *Signer) checkCRL() {
	crl, err := s.ca.LoadCRL()
	if err != nil {
		s.log.Warn("signer: "+err.Error(), "dir", s.ca.Dir)
		return
	}
	if w := CRLWarning(crl, s.ca.now()); w != "" {
		s.log.Warn("signer: "+w, "dir", s.ca.Dir)
	}
}

// String names the signer for logs.
func (s *Signer) String() string {
	return fmt.Sprintf("fleetca signer(%s@%s)", s.o.ClientID, s.o.Broker)
}
