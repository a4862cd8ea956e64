package ingest

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/mqttconn"
	"github.com/uitpas/tap-kiosk/internal/ratelog"
	"github.com/uitpas/tap-kiosk/protocol"
)

// ErrStarted is returned by a second Run of one Service.
var ErrStarted = errors.New("service already run")

// ServiceOpts configure the MQTT side.
type ServiceOpts struct {
	// Broker is the MQTT URL: ssl://host:8883 in production, tcp:// in tests.
	Broker string
	// Prefix is the contract's topic prefix (default kiosk/v1).
	Prefix string
	// ClientID must be stable across restarts: the broker keeps this
	// persistent session's subscription and queues checkins for it while the
	// service is away. Several ingests sharing a SharedGroup need distinct
	// ids. Default "kiosk-ingest".
	ClientID string
	// TLS, when set, is used for ssl:// brokers (client certificate, CA).
	TLS                *tls.Config
	Username, Password string
	Logger             *slog.Logger
	Clock              clock.Clock
	// SharedGroup, when set, subscribes $share/GROUP/P/+/checkin so that
	// several ingests split the load (MQTT 5 / Mosquitto shared subscriptions).
	SharedGroup string
	// BatchSize is the most checkins per transaction (default 256).
	BatchSize int
	// InFlight is how many batches are booked at once (default 2 on
	// PostgreSQL, 1 on SQLite). A batch spends most of its time waiting on
	// the server's round trips, and a second one books meanwhile on its own
	// connection; SQLite has one writer, so a second batch would only wait.
	// Each batch is still answered only after its own commit, and
	// acknowledged only after every batch received before it. Two batches
	// may commit in either order (as two instances' do), and the ledger's
	// booking order follows the commits.
	InFlight int
	// BatchWait is how long a batch waits for more checkins once the queue is
	// empty (default 2 ms; negative: not at all).
	BatchWait time.Duration
	// QueueLen bounds the checkins received but not yet booked (default 4096).
	QueueLen int
	// ReconnectMax caps the reconnect backoff (default 2 s): while the
	// ingest is away the whole fleet waits for its Results, and one
	// client's attempt every 2 s costs the broker nothing.
	ReconnectMax time.Duration
	// OnTick, when set, is called as the batches are booked: after each
	// batch is booked, while a failed transaction is retried, and every
	// TickEvery while idle with no batch in hand; never twice at once. It
	// proves that booking goes on (kiosk-ingest feeds systemd's watchdog
	// from it, so a wedged ingest gets restarted); it must not block.
	OnTick func(now time.Time)
	// TickEvery paces OnTick while idle (default 1 s).
	TickEvery time.Duration
	// Fleet, when set, also subscribes P/+/status and hands it every valid
	// Status, and each booked checkin's device (package fleet's Feeder).
	Fleet FleetSink
	// OnBatch, when set, is called after each commit with the batch's size
	// and how long the ledger took (Clock time; the metrics' histograms),
	// from the batch's booking (up to InFlight at once). It must not block.
	OnBatch func(size int, commit time.Duration)
	// OnAnswered, when set, is called for each checkin once its Result is
	// handed to the broker client, with how long since the checkin was
	// received (Clock time): central's own share of a kiosk's wait for its
	// Result. Called from the batch's booking, like OnBatch; it must not
	// block.
	OnAnswered func(waited time.Duration)
	// ConfigKey, when set, also subscribes P/+/config in the persistent
	// session and records every Config signed with this key as its
	// device's assignment (assignconfig.go).
	ConfigKey ed25519.PublicKey
}

// Counters are what the service has seen since it started.
type Counters struct {
	Received   int64 // messages on the checkin topics
	Results    int64 // Results published (replays included)
	Replays    int64 // ids answered from the ledger
	Collisions int64 // ids already in the ledger for another device
	// Dropped payloads, by reason.
	DropTooLarge, DropMalformed, DropVersion, DropInvalid, DropTopic, DropMismatch int64
	Batches                                                                        int64 // committed transactions
	DBErrors                                                                       int64 // failed transactions (retried)
	PublishErrors                                                                  int64
	Connects                                                                       int64
	Subscribes                                                                     int64
	// Status messages received with Fleet set, and of them dropped
	// (undecodable, or deviceId not the topic's).
	StatusReceived, StatusDropped int64
	// Configs received with ConfigKey set; of them recorded as new
	// assignments, and refused (unsigned, another key, another device).
	ConfigsReceived, ConfigsRecorded, ConfigsRefused int64
	// ResultsByStatus is Results by the Result's status (ResultStatuses).
	ResultsByStatus map[string]int64
}

// ResultStatuses are the statuses ResultsByStatus counts, in order.
func ResultStatuses() []string {
	return []string{protocol.StatusSaved, protocol.StatusMaximumReached, protocol.StatusCardBlocked, protocol.StatusPassholderNotFound,
		protocol.StatusCheckinNotAllowed, protocol.StatusEventNotFound, protocol.StatusInvalidRequest}
}

// Dropped is the sum of the drop counters.
func (c Counters) Dropped() int64 {
	return c.DropTooLarge + c.DropMalformed + c.DropVersion + c.DropInvalid + c.DropTopic + c.DropMismatch
}

type counters struct {
	received, results, replays, collisions,
	dropTooLarge, dropMalformed, dropVersion, dropInvalid, dropTopic, dropMismatch,
	batches, dbErrors, publishErrors, connects, subscribes atomic.Int64
	statusReceived, statusDropped                    atomic.Int64
	configsReceived, configsRecorded, configsRefused atomic.Int64
	byStatus                                         [7]atomic.Int64 // ResultStatuses' order
}

// Service answers checkins from MQTT with the Ledger.
type Service struct {
	l     *Ledger
	o     ServiceOpts
	log   *slog.Logger
	drops *ratelog.Limiter
	topic string

	in      chan item
	stop    chan struct{}
	tickMu  sync.Mutex // OnTick is never called twice at once
	ready   chan struct{}
	readyMu sync.Once
	started atomic.Bool
	c       counters
	// connected: the MQTT connection is up (Connected).
	connected atomic.Bool
}

type item struct {
	in  Input
	msg mqtt.Message
}

// Check reports whether the options can work (the broker URL, the prefix).
func (o ServiceOpts) Check() error {
	u, err := url.Parse(o.Broker)
	if err != nil || u.Host == "" {
		return fmt.Errorf("ingest: broker %q: want scheme://host:port: %w", o.Broker, ErrInvalid)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("ingest: broker %q: scheme %q (want tcp, ssl, ws or wss): %w", o.Broker, u.Scheme, ErrInvalid)
	}
	if strings.ContainsAny(o.Prefix, "+#") || strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/") {
		return fmt.Errorf("ingest: topic prefix %q: %w", o.Prefix, ErrInvalid)
	}
	if strings.ContainsAny(o.SharedGroup, "+#/") {
		return fmt.Errorf("ingest: shared group %q: %w", o.SharedGroup, ErrInvalid)
	}
	return nil
}

// New makes a Service for ledger; it checks the options but connects only in
// Run.
func New(ledger *Ledger, o ServiceOpts) (*Service, error) {
	if ledger == nil {
		return nil, fmt.Errorf("ingest: service without ledger: %w", ErrInvalid)
	}
	if err := o.Check(); err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = protocol.DefaultPrefix
	}
	if o.ClientID == "" {
		o.ClientID = "kiosk-ingest"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.BatchWait == 0 {
		o.BatchWait = 2 * time.Millisecond
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 2 * time.Second
	}
	if o.TickEvery <= 0 {
		o.TickEvery = time.Second
	}
	if o.InFlight <= 0 {
		o.InFlight = ledger.d.writers
	}
	s := &Service{
		l: ledger, o: o, log: o.Logger,
		drops: ratelog.New(10 * time.Second),
		topic: o.Prefix + "/+/" + protocol.KindCheckin,
		in:    make(chan item, o.QueueLen),
		stop:  make(chan struct{}),
		ready: make(chan struct{}),
	}
	if o.SharedGroup != "" {
		s.topic = "$share/" + o.SharedGroup + "/" + s.topic
	}
	return s, nil
}

// String names the service.
func (s *Service) String() string { return "ingest.Service(" + s.o.ClientID + "@" + s.o.Broker + ")" }

// Ready is closed once the service has subscribed for the first time.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Counters returns a snapshot of the counters.
func (s *Service) Counters() Counters {
	c := &s.c
	return Counters{
		Received: c.received.Load(), Results: c.results.Load(), Replays: c.replays.Load(),
		Collisions: c.collisions.Load(), DropTooLarge: c.dropTooLarge.Load(), DropMalformed: c.dropMalformed.Load(),
		DropVersion: c.dropVersion.Load(), DropInvalid: c.dropInvalid.Load(), DropTopic: c.dropTopic.Load(),
		DropMismatch: c.dropMismatch.Load(), Batches: c.batches.Load(), DBErrors: c.dbErrors.Load(),
		PublishErrors: c.publishErrors.Load(), Connects: c.connects.Load(), Subscribes: c.subscribes.Load(),
		StatusReceived: c.statusReceived.Load(), StatusDropped: c.statusDropped.Load(),
		ConfigsReceived: c.configsReceived.Load(), ConfigsRecorded: c.configsRecorded.Load(),
		ConfigsRefused:  c.configsRefused.Load(),
		ResultsByStatus: s.resultsByStatus(),
	}
}

func (s *Service) resultsByStatus() map[string]int64 {
	m := make(map[string]int64, len(s.c.byStatus))
	for i, st := range ResultStatuses() {
		m[st] = s.c.byStatus[i].Load()
	}
	return m
}

// Connected reports whether the service is connected to the broker now.
func (s *Service) Connected() bool { return s.connected.Load() }

// Run connects (and keeps reconnecting) and serves until ctx ends. The batch
// in hand is finished before it returns; checkins received but not booked
// are not acknowledged, so the broker delivers them again next time.
func (s *Service) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return fmt.Errorf("ingest: run: %w", ErrStarted)
	}
	mo := mqtt.NewClientOptions().
		AddBroker(s.o.Broker).
		SetClientID(s.o.ClientID).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(time.Second, s.o.ReconnectMax)).
		SetMaxReconnectInterval(s.o.ReconnectMax).
		SetKeepAlive(30 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		// Acknowledged after the commit (see writer), never before.
		SetAutoAckDisabled(true).
		// Queued messages of the persistent session can arrive before the
		// subscription is renewed: the default handler takes them.
		SetDefaultPublishHandler(s.onMessage).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.connected.Store(false)
			s.log.Warn("mqtt connection lost", "broker", s.o.Broker, "err", err)
		})
	if s.o.TLS != nil {
		mo.SetTLSConfig(s.o.TLS)
	}
	if u, err := url.Parse(s.o.Broker); err == nil && mqttconn.Handles(u.Scheme) {
		mo.SetCustomOpenConnectionFn(mqttconn.Open) // reads buffered
	}
	if s.o.Username != "" {
		mo.SetUsername(s.o.Username)
		mo.SetPassword(s.o.Password)
	}
	client := mqtt.NewClient(mo)
	client.Connect() // with ConnectRetry it keeps trying in the background

	done := make(chan struct{})
	go func() { defer close(done); s.writer(client) }()
	<-ctx.Done()
	close(s.stop)
	<-done
	client.Disconnect(250)
	s.connected.Store(false)
	s.log.Info("ingest stopped", "counters", fmt.Sprintf("%+v", s.Counters()))
	return nil
}

func (s *Service) onConnect(c mqtt.Client) {
	s.c.connects.Add(1)
	s.connected.Store(true)
	s.log.Info("mqtt connected", "broker", s.o.Broker, "clientId", s.o.ClientID)
	if s.o.ConfigKey != nil {
		s.subscribeConfigs(c) // first: the retained assignments before the checkins that need them
	}
	t := c.Subscribe(s.topic, 1, s.onMessage)
	if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		// The persistent session usually still holds the subscription; the
		// next reconnect tries again.
		s.log.Error("mqtt subscribe failed", "topic", s.topic, "err", t.Error())
		return
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for topic, qos := range st.Result() {
			if qos == 0x80 {
				s.log.Error("mqtt subscribe refused by broker", "topic", topic)
				return
			}
		}
	}
	if s.o.Fleet != nil {
		s.subscribeStatus(c)
	}
	s.c.subscribes.Add(1)
	s.log.Info("subscribed", "topic", s.topic)
	s.readyMu.Do(func() { close(s.ready) })
}

// onMessage runs on paho's router goroutine: it checks the payload and queues
// it for the writer. A full queue holds the router back, and with it the
// broker (TCP flow control and its in-flight window): backpressure, not loss.
func (s *Service) onMessage(_ mqtt.Client, m mqtt.Message) {
	if strings.HasSuffix(m.Topic(), "/"+protocol.KindStatus) {
		s.onStatus(nil, m) // queued for the session before the subscription was renewed
		return
	}
	if strings.HasSuffix(m.Topic(), "/"+protocol.KindConfig) {
		s.onConfig(nil, m)
		return
	}
	now := s.o.Clock.Now()
	s.c.received.Add(1)
	c, reason, err := s.check(m.Topic(), m.Payload())
	if err != nil {
		s.drops.Log(s.o.Logger, s.o.Clock.Now(), slog.LevelWarn, reason, "checkin dropped", "reason", reason, "topic", m.Topic(), "bytes", len(m.Payload()), "err", err)
		m.Ack()
		return
	}
	select {
	case s.in <- item{in: Input{Checkin: c, ReceivedAt: now}, msg: m}:
	case <-s.stop: // not acknowledged: delivered again next session
	}
}

// check decodes a checkin and says why it is dropped, if it is.
func (s *Service) check(topic string, payload []byte) (protocol.Checkin, string, error) {
	device, kind, err := protocol.ParseTopic(s.o.Prefix, topic)
	if err == nil && kind != protocol.KindCheckin {
		err = fmt.Errorf("ingest: topic kind %q: %w", kind, protocol.ErrBadTopic)
	}
	if err != nil {
		s.c.dropTopic.Add(1)
		return protocol.Checkin{}, "topic", err
	}
	c, err := protocol.DecodeCheckin(payload)
	switch {
	case err == nil:
	case errors.Is(err, protocol.ErrTooLarge):
		s.c.dropTooLarge.Add(1)
		return c, "too-large", err
	case errors.Is(err, protocol.ErrMalformed):
		s.c.dropMalformed.Add(1)
		return c, "malformed", err
	case errors.Is(err, protocol.ErrVersion):
		s.c.dropVersion.Add(1)
		return c, "version", err
	default:
		s.c.dropInvalid.Add(1)
		return c, "invalid", err
	}
	if c.DeviceID != device {
		s.c.dropMismatch.Add(1)
		return c, "device-mismatch", fmt.Errorf("ingest: payload deviceId %q on topic of %q: %w", c.DeviceID, device, protocol.ErrBadDevice)
	}
	return c, "", nil
}

// writer is the loop that books the ledger: it takes what is queued (up to
// BatchSize, waiting BatchWait for more) and hands it to a booking (book),
// up to InFlight at once, each in one transaction. A booking publishes its
// Results only after its commit, and acknowledges its checkins only after
// the booking before it acknowledged its own: PUBACKs go in receive order.
// When the service stops, the writer waits for the bookings in hand.
func (s *Service) writer(client mqtt.Client) {
	var tickC <-chan time.Time // OnTick while idle; nil without OnTick
	var tickT clock.Timer
	if s.o.OnTick != nil {
		tickT = s.o.Clock.NewTimer(s.o.TickEvery)
		defer tickT.Stop()
		tickC = tickT.C()
	}
	slots := make(chan struct{}, s.o.InFlight)
	var bookings sync.WaitGroup
	defer bookings.Wait()
	// acked is the previous booking's: whether its checkins were
	// acknowledged (closed over by the next booking, which waits for it).
	acked := make(chan bool, 1)
	acked <- true
	for {
		// A slot first, then the batch: it holds what queued meanwhile.
		select {
		case slots <- struct{}{}:
		case <-s.stop:
			return
		}
		batch := make([]item, 0, s.o.BatchSize)
	idle:
		for {
			select {
			case <-s.stop:
				return
			case <-tickC:
				// Only with no batch in hand: a booking that hangs must
				// starve the watchdog, as it did with one at a time.
				if len(slots) == 1 {
					s.tick()
				}
				tickT.Reset(s.o.TickEvery)
			case it := <-s.in:
				batch = append(batch, it)
				break idle
			}
		}
		batch = s.fill(batch)
		prev, next := acked, make(chan bool, 1)
		acked = next
		bookings.Add(1)
		go func() {
			defer bookings.Done()
			next <- s.book(client, batch, prev)
			<-slots
			s.tick()
		}()
	}
}

// tick calls OnTick, never twice at once.
func (s *Service) tick() {
	if s.o.OnTick != nil {
		s.tickMu.Lock()
		defer s.tickMu.Unlock()
		s.o.OnTick(s.o.Clock.Now())
	}
}

// fill adds to batch what is queued, and what arrives within BatchWait.
func (s *Service) fill(batch []item) []item {
	for len(batch) < s.o.BatchSize {
		select {
		case it := <-s.in:
			batch = append(batch, it)
			continue
		default:
		}
		break
	}
	if s.o.BatchWait < 0 || len(batch) >= s.o.BatchSize {
		return batch
	}
	t := s.o.Clock.NewTimer(s.o.BatchWait)
	defer t.Stop()
	for len(batch) < s.o.BatchSize {
		select {
		case it := <-s.in:
			batch = append(batch, it)
		case <-t.C():
			return batch
		case <-s.stop:
			return batch
		}
	}
	return batch
}

// book commits batch and then answers it: the Results at once, the
// acknowledgements once prev says the batch before was acknowledged. A
// failed transaction is retried with backoff until it commits or the
// service stops. It reports whether batch was acknowledged: not when the
// service stopped first, nor when the batch before was not (the broker
// delivers them again, and the ledger answers them as replays).
func (s *Service) book(client mqtt.Client, batch []item, prev <-chan bool) bool {
	in := make([]Input, len(batch))
	for i, it := range batch {
		in[i] = it.in
	}
	// A batch in hand is finished even while Run is being stopped.
	ctx := context.Background()
	backoff := 50 * time.Millisecond
	var out []Outcome
	for {
		var err error
		began := s.o.Clock.Now()
		if out, err = s.l.ProcessBatch(ctx, in); err == nil {
			if s.o.OnBatch != nil {
				s.o.OnBatch(len(in), s.o.Clock.Now().Sub(began))
			}
			break
		}
		s.c.dbErrors.Add(1)
		s.log.Error("ledger write failed; retrying", "checkins", len(in), "err", err, "retryIn", backoff)
		t := s.o.Clock.NewTimer(backoff)
		select {
		case <-t.C():
		case <-s.stop:
			t.Stop()
			return false
		}
		backoff = min(backoff*2, 5*time.Second)
		s.tick() // retrying is the loop turning
	}
	s.c.batches.Add(1)
	for i, o := range out {
		c := batch[i].in.Checkin
		if o.Replay {
			s.c.replays.Add(1)
		}
		if o.Collision {
			s.c.collisions.Add(1)
			s.drops.Log(s.o.Logger, s.o.Clock.Now(), slog.LevelWarn, "collision", "checkin id already booked for another device", "id", c.ID, "device", c.DeviceID)
		}
		t := client.Publish(protocol.Topic(s.o.Prefix, c.DeviceID, protocol.KindResult), 1, false, o.Payload)
		select {
		case <-t.Done():
			if t.Error() != nil {
				s.c.publishErrors.Add(1)
				s.drops.Log(s.o.Logger, s.o.Clock.Now(), slog.LevelWarn, "publish", "result publish failed", "device", c.DeviceID, "err", t.Error())
			}
		default: // in flight; paho resends it after a reconnect
		}
		s.c.results.Add(1)
		for j, st := range ResultStatuses() {
			if o.Result.Status == st {
				s.c.byStatus[j].Add(1)
			}
		}
		if s.o.Fleet != nil && !o.Collision {
			s.o.Fleet.Checkin(c.DeviceID, batch[i].in.ReceivedAt)
		}
		s.log.Debug("checkin answered", "id", c.ID, "device", c.DeviceID, "seq", c.Seq,
			"chip", protocol.MaskChip(c.ChipNumber), "event", c.EventID, "status", o.Result.Status, "replay", o.Replay)
	}
	if s.o.OnAnswered != nil {
		now := s.o.Clock.Now()
		for _, it := range batch {
			s.o.OnAnswered(now.Sub(it.in.ReceivedAt))
		}
	}
	// In receive order, as MQTT wants PUBACKs.
	if !<-prev {
		return false
	}
	for _, it := range batch {
		it.msg.Ack()
	}
	return true
}

// FleetSink takes what the fleet registry learns from the traffic (package
// fleet's Feeder). Its methods are called on paho's router goroutine and on
// the bookings of the batches: they must return at once (queue, never write).
type FleetSink interface {
	// Status is a Status (or last will) whose deviceId is its topic's; raw
	// is the payload as received, retained whether the broker delivered it
	// from its retained store.
	Status(s protocol.Status, raw []byte, receivedAt time.Time, retained bool)
	// Checkin says a checkin of device was booked (or answered again).
	Checkin(device string, receivedAt time.Time)
}

// subscribeStatus subscribes P/+/status for the fleet registry, never as a
// shared subscription: every instance sees every kiosk's retained Status
// (the registry takes a repeated one as a duplicate). A failure is logged
// and leaves the checkins served; the next reconnect tries again.
func (s *Service) subscribeStatus(c mqtt.Client) {
	s.subscribeAll(c, protocol.KindStatus, s.onStatus, "")
}

// subscribeAll subscribes P/+/kind (QoS 1, never shared) with handler and
// logs the outcome; refused is added to the log line when the broker
// refuses it.
func (s *Service) subscribeAll(c mqtt.Client, kind string, handler mqtt.MessageHandler, refused string) {
	topic := protocol.Topic(s.o.Prefix, "+", kind)
	t := c.Subscribe(topic, 1, handler)
	if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		s.log.Error("mqtt subscribe failed", "topic", topic, "err", t.Error())
		return
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok && st.Result()[topic] == 0x80 {
		s.log.Error("mqtt subscribe refused by broker"+refused, "topic", topic)
		return
	}
	s.log.Info("subscribed", "topic", topic)
}

// onStatus runs on paho's router goroutine: it checks a Status and hands it
// to the fleet sink, which queues it. It is acknowledged at once: the
// retained Status is the kiosk's to keep, not ours.
func (s *Service) onStatus(_ mqtt.Client, m mqtt.Message) {
	m.Ack()
	if s.o.Fleet == nil {
		return
	}
	s.c.statusReceived.Add(1)
	device, kind, err := protocol.ParseTopic(s.o.Prefix, m.Topic())
	if err == nil && kind != protocol.KindStatus {
		err = fmt.Errorf("ingest: topic kind %q: %w", kind, protocol.ErrBadTopic)
	}
	var st protocol.Status
	if err == nil {
		st, err = protocol.DecodeStatus(m.Payload())
	}
	if err == nil && st.DeviceID != device {
		err = fmt.Errorf("ingest: status deviceId %q on topic of %q: %w", st.DeviceID, device, protocol.ErrBadDevice)
	}
	if err != nil {
		s.c.statusDropped.Add(1)
		s.drops.Log(s.o.Logger, s.o.Clock.Now(), slog.LevelWarn, "status", "status dropped", "topic", m.Topic(), "bytes", len(m.Payload()), "err", err)
		return
	}
	s.o.Fleet.Status(st, m.Payload(), s.o.Clock.Now(), m.Retained())
}
