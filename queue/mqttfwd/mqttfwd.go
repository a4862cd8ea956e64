// Package mqttfwd forwards the outbox's checkins to central over MQTT (paho)
// and applies central's Results back to the outbox.
//
// The SQLite outbox is the queue of record: paho's memory store only holds
// the in-flight window, and a checkin leaves the outbox only when its Result
// arrives (a PUBACK is not delivery). Checkins go out in seq order, QoS 1, at
// most Window awaiting a Result; those without a Result are republished
// (same bytes) after a reconnect and after RetryAfter. Central answers a
// repeated id with the identical Result, so duplicates are harmless.
//
// One goroutine (the loop in Run) owns the window and publishes; a second
// (the applier) decodes Results and deletes their checkins in batches, so the
// outbox's writes and the publishing overlap. Paho's callbacks only hand
// payloads and connection events over channels: paho's router must not block.
//
// Subscriptions are checked: a broker that refuses one (SUBACK 0x80, as
// Mosquitto 2 answers a subscribe its ACL denies) leaves the session up but
// the kiosk deaf to what it refused. The forwarder then says so (Subscription,
// and a log line at most every refusedLogEvery), publishes no checkins while
// the result topic is refused (central would book them, but their Results
// would never reach the outbox: they would be republished forever), keeps
// publishing its Status, and subscribes again with the reconnect backoff
// until the broker grants it.
package mqttfwd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/internal/mqttconn"
	"github.com/uitpas/tap-kiosk/internal/ratelog"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
)

// Defaults for Opts.
const (
	DefaultWindow     = 64
	DefaultRetryAfter = 30 * time.Second
	// StatusEvery is the least time between two Status publications made
	// because pending changed (the contract's "at most every 10 s").
	StatusEvery = 10 * time.Second
)

const (
	opTimeout  = 10 * time.Second // subscribe, dial, final status
	backoffMin = 500 * time.Millisecond
	// backoffMax bounds how long after central is back a kiosk may still
	// wait; the jitter spreads a fleet's reconnects over half of it. 6 s:
	// a fleet is back within 6 s of its broker (1 000 kiosks: some 330
	// connects a second), and a kiosk whose broker is away dials at most
	// every 3 to 6 s (a refused TCP connect: nothing to the broker).
	backoffMax   = 6 * time.Second
	resultsDepth = 4096
	// maxResultRun is the most Results applied in one outbox transaction:
	// queue.MaxDoneBatch keeps that transaction's WAL small (a full disk
	// must still take it).
	maxResultRun    = queue.MaxDoneBatch
	badLogEvery     = 10 * time.Second
	refusedLogEvery = time.Minute
	// applyRetryMin and applyRetryMax bound the wait before Results that the
	// outbox could not apply (a full disk) are applied again.
	applyRetryMin = 100 * time.Millisecond
	applyRetryMax = 5 * time.Second
	keepAlive     = 30 * time.Second
	disconnectQMs = 500
	lingerBatch   = 128
	lingerMax     = 2 * time.Millisecond
)

// Opts configures a Forwarder.
type Opts struct {
	Broker     string        // tcp://… or ssl://…
	TLS        *tls.Config   // for ssl://
	Prefix     string        // topic prefix, default protocol.DefaultPrefix
	DeviceID   string        // also the MQTT client id; clean session false
	Window     int           // max checkins published and awaiting a Result; default 64
	RetryAfter time.Duration // republish a checkin with no Result after this; default 30s
	Clock      clock.Clock   // nil → clock.Real{}
	Logger     *slog.Logger  // nil → discard
	// OnResult is called after a Result was applied to the outbox (known =
	// the id was pending). It runs on the forwarder's applier goroutine:
	// keep it short.
	OnResult func(r protocol.Result, known bool)
	// OnConfig gets raw retained config payloads; the core verifies them.
	OnConfig func(payload []byte)
	// Status is the core's snapshot; the forwarder fills Online, At,
	// Pending, OldestPendingS and DeviceID.
	Status func() protocol.Status
	// Subscribe are more topics the forwarder subscribes to on every
	// session (QoS 1), next to its result and config topics, each with the
	// handler of its payloads. A handler runs on paho's goroutine: it must
	// hand the payload over and return, never block.
	Subscribe []Sub
}

// Sub is one topic of Opts.Subscribe.
type Sub struct {
	Topic  string
	Handle func(payload []byte)
}

// ErrOffline: Publish without a session with the broker.
var ErrOffline = errors.New("mqttfwd: no session with the broker")

// Counters are the forwarder's running totals.
type Counters struct {
	Published, Republished, Results, UnknownResults, BadPayloads int64
	// ApplyFailures counts runs of Results the outbox failed to apply (a full
	// disk): they are kept and applied again after a backoff.
	ApplyFailures int64
}

// Subscription is the state of the forwarder's subscriptions on the
// current session.
type Subscription struct {
	// Session: a session with the broker is up (the broker accepted the
	// connection), whatever the subscriptions.
	Session bool
	// Subscribed: the broker granted every subscription (result, config
	// and Opts.Subscribe). Without a session it is false.
	Subscribed bool
	// Refused lists the topics the broker refused on this session (SUBACK
	// 0x80); they are subscribed again with backoff. While the result topic
	// is among them no checkin is published and Connected is false.
	Refused []string
}

// Forwarder moves checkins from the outbox to central. Make one with New.
type Forwarder struct {
	ob  *queue.Outbox
	o   Opts
	clk clock.Clock
	log *slog.Logger

	tCheckin, tResult, tStatus, tConfig string
	extra                               map[string]func([]byte) // Opts.Subscribe

	kick       chan struct{}
	statusKick chan struct{}
	rescan     chan struct{}
	results    *resultQueue
	events     chan link     // the session's state, whenever it changes
	freed      chan []string // ids whose Result the applier handled
	done       chan struct{}
	running    atomic.Bool

	connected                                      atomic.Bool // session up and the result topic granted
	published, republished, nresults, unknown, bad atomic.Int64
	applyFailures                                  atomic.Int64
	turns, resubscribes                            atomic.Int64 // loop turns and subscribes again, for tests

	client     mqtt.Client
	bmin, bmax time.Duration // reconnect backoff bounds
	connectTO  time.Duration // paho's connect timeout (a test shortens it)
	runCtx     context.Context
	attempts   atomic.Int64 // dials since the last successful connect

	mu      sync.Mutex // guards conn, rng, session, refused, gen, lost, and the sending of events
	conn    *dropConn
	rng     *mrand.Rand
	session bool
	refused []string         // topics refused on this session
	gen     int64            // session number: onConnect and onLost bump it
	lost    chan struct{}    // closed when this session ends
	badLog  *ratelog.Limiter // bad Result payloads, one line per badLogEvery
	subLog  *ratelog.Limiter // refused subscriptions, one line per refusedLogEvery

	// loop state, owned by Run's goroutine
	inflight map[string]*flight
	fifo     []fifoEntry // publish order, for the retry deadline; stale entries skipped
	cursor   int64       // highest seq loaded into the window
	more     bool        // the outbox may hold checkins beyond cursor
	online   bool        // loop's view: a session is up (Status goes out)
	forward  bool        // loop's view: the result topic is granted (checkins go out)
}

// link is a change of the session's state for the loop.
type link struct{ up, forward bool }

type flight struct {
	item   queue.Item
	sentAt time.Time
	gen    int
}

type fifoEntry struct {
	id  string
	gen int
}

// New checks the options and returns a Forwarder for ob.
func New(ob *queue.Outbox, o Opts) (*Forwarder, error) {
	if ob == nil {
		return nil, errors.New("mqttfwd: nil outbox")
	}
	if !protocol.ValidDeviceID(o.DeviceID) {
		return nil, fmt.Errorf("mqttfwd: device id %q: %w", o.DeviceID, protocol.ErrBadDevice)
	}
	u, err := url.Parse(o.Broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqttfwd: broker %q: not a URL like tcp://host:1883 or ssl://host:8883", o.Broker)
	}
	if !mqttconn.Handles(u.Scheme) { // the connections dial opens
		return nil, fmt.Errorf("mqttfwd: broker %q: scheme must be tcp or ssl", o.Broker)
	}
	if o.Prefix == "" {
		o.Prefix = protocol.DefaultPrefix
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var seed [16]byte
	rand.Read(seed[:])
	extra := map[string]func([]byte){}
	for _, s := range o.Subscribe {
		if s.Topic == "" || s.Handle == nil || strings.ContainsAny(s.Topic, "+#") {
			return nil, fmt.Errorf("mqttfwd: subscription %q: a topic (no wildcard) and a handler", s.Topic)
		}
		extra[s.Topic] = s.Handle
	}
	f := &Forwarder{
		ob: ob, o: o, clk: o.Clock, log: o.Logger, badLog: ratelog.New(badLogEvery), subLog: ratelog.New(refusedLogEvery),
		extra:      extra,
		tCheckin:   protocol.Topic(o.Prefix, o.DeviceID, protocol.KindCheckin),
		tResult:    protocol.Topic(o.Prefix, o.DeviceID, protocol.KindResult),
		tStatus:    protocol.Topic(o.Prefix, o.DeviceID, protocol.KindStatus),
		tConfig:    protocol.Topic(o.Prefix, o.DeviceID, protocol.KindConfig),
		kick:       make(chan struct{}, 1),
		statusKick: make(chan struct{}, 1),
		rescan:     make(chan struct{}, 1),
		results:    newResultQueue(),
		events:     make(chan link, 16),
		freed:      make(chan []string, 64),
		done:       make(chan struct{}),
		rng:        mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		inflight:   map[string]*flight{},
		bmin:       backoffMin,
		bmax:       backoffMax,
		connectTO:  opTimeout,
	}
	return f, nil
}

// String names the forwarder for logs.
func (f *Forwarder) String() string { return "mqttfwd(" + f.o.DeviceID + "@" + f.o.Broker + ")" }

// Kick tells the forwarder a checkin was enqueued; it never blocks.
func (f *Forwarder) Kick() {
	signal(f.kick)
}

// StatusChanged asks for a Status publication now; it never blocks.
func (f *Forwarder) StatusChanged() {
	signal(f.statusKick)
}

// Rescan makes the forwarder read the outbox from its first seq again at
// its next turn, rather than from beyond the highest seq it loaded: after a
// queue.Salvage into the outbox it forwards (salvaged checkins keep their
// older seq); it never blocks.
func (f *Forwarder) Rescan() {
	signal(f.rescan)
}

// Connected reports whether the forwarder can forward: a session with the
// broker is up and the broker granted the result subscription.
func (f *Forwarder) Connected() bool { return f.connected.Load() }

// Subscription reports the session and what the broker granted or refused.
func (f *Forwarder) Subscription() Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Subscription{Session: f.session, Subscribed: f.session && len(f.refused) == 0,
		Refused: slices.Clone(f.refused)}
}

// Counters returns the running totals.
func (f *Forwarder) Counters() Counters {
	return Counters{
		Published:      f.published.Load(),
		Republished:    f.republished.Load(),
		Results:        f.nresults.Load(),
		UnknownResults: f.unknown.Load(),
		BadPayloads:    f.bad.Load(),
		ApplyFailures:  f.applyFailures.Load(),
	}
}

// Run connects (retrying with jittered, capped backoff), forwards until ctx
// is done, then publishes the offline status and disconnects cleanly. It
// may be called once.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("mqttfwd: Run called twice")
	}
	f.runCtx = ctx
	opts := mqtt.NewClientOptions().
		AddBroker(f.o.Broker).
		SetClientID(f.o.DeviceID).
		SetCleanSession(false).
		SetStore(mqtt.NewMemoryStore()).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		// Our dialer sleeps the jittered backoff; paho's own pauses stay short.
		SetConnectRetryInterval(100*time.Millisecond).
		SetMaxReconnectInterval(100*time.Millisecond).
		SetConnectTimeout(f.connectTO).
		SetWriteTimeout(opTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(opTimeout).
		SetOrderMatters(false).
		SetResumeSubs(false). // we subscribe in OnConnect, every time
		// No SetMaxResumePubInFlight: paho's store holds at most our window
		// of unacknowledged checkins, so it limited nothing, and its
		// goroutine reads the client's stop channel while a reconnect
		// replaces it (a data race of paho 1.5.1, eclipse-paho #703's kind:
		// TestBrokerDownAndBack under -race failed 3 runs in 30 with it,
		// 1 in about 570 without).
		SetBinaryWill(f.tStatus, protocol.Will(f.o.DeviceID), 1, true).
		SetConnectionAttemptHandler(f.beforeAttempt).
		SetCustomOpenConnectionFn(f.dial).
		SetOnConnectHandler(f.onConnect).
		SetConnectionLostHandler(f.onLost)
	if f.o.TLS != nil {
		opts.SetTLSConfig(f.o.TLS)
	}
	f.client = mqtt.NewClient(opts)
	f.client.Connect() // completes only when connected; onConnect tells the loop

	appliedDone := make(chan struct{})
	go func() { defer close(appliedDone); f.applier(ctx) }()
	f.loop(ctx)

	close(f.done)
	<-appliedDone
	if f.client.IsConnectionOpen() {
		// A clean DISCONNECT suppresses the will: say offline ourselves.
		t := f.client.Publish(f.tStatus, 1, true, protocol.Will(f.o.DeviceID))
		if !t.WaitTimeout(2*time.Second) || t.Error() != nil {
			f.log.Warn("mqttfwd: offline status not confirmed", "err", t.Error())
		}
	}
	f.client.Disconnect(disconnectQMs)
	f.connected.Store(false)
	return nil
}

// beforeAttempt waits the backoff that the number of attempts since the
// last connect calls for. paho calls it before each connection attempt and,
// unlike the dialer, before it starts the attempt's connect timeout: a wait
// in the dialer longer than that timeout would fail every attempt after it.
//
// The wait paces real network attempts against paho's real deadlines, so it
// runs on real time, not the injected clock: a test that fakes the clock for
// the retry and status timers must not be able to wedge its own reconnect.
func (f *Forwarder) beforeAttempt(_ *url.URL, tc *tls.Config) *tls.Config {
	n := f.attempts.Add(1) - 1
	if n > 0 {
		d := f.backoff(n)
		f.log.Debug("mqttfwd: reconnect backoff", "attempt", n, "wait", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-f.runCtx.Done():
			t.Stop()
		}
	}
	return tc
}

// dial opens the network connection for paho.
func (f *Forwarder) dial(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	if err := f.runCtx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(f.runCtx, opTimeout)
	defer cancel()
	raw, err := mqttconn.Dial(ctx, u, o.TLSConfig)
	if err != nil {
		f.log.Debug("mqttfwd: dial", "broker", f.o.Broker, "err", err)
		return nil, err
	}
	dc := &dropConn{Conn: mqttconn.Wrap(raw, mqttconn.Kiosk), raw: raw}
	f.mu.Lock()
	f.conn = dc
	f.mu.Unlock()
	return dc, nil
}

// errDropped is what paho reads from a connection we dropped: paho ignores
// "use of closed network connection", as if it had closed it itself.
var errDropped = errors.New("mqttfwd: connection dropped")

// dropConn is the network connection (its reads buffered and its writes
// gathered: internal/mqttconn) with a way to cut it that paho notices.
type dropConn struct {
	net.Conn
	raw     net.Conn // the network's own: closed at once, nothing flushed
	dropped atomic.Bool
}

func (c *dropConn) drop() {
	c.dropped.Store(true)
	c.raw.Close()
}

func (c *dropConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}

func (c *dropConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}

// backoff is the wait before reconnect attempt n (n ≥ 1): doubling from
// bmin, capped at bmax, each scaled by a random factor in
// [0.5, 1) so that a fleet does not reconnect in step.
func (f *Forwarder) backoff(n int64) time.Duration {
	d := f.bmax
	if n < 20 {
		d = min(f.bmax, f.bmin<<(n-1))
	}
	f.mu.Lock()
	j := 0.5 + f.rng.Float64()/2
	f.mu.Unlock()
	return time.Duration(float64(d) * j)
}

// dropConn closes the network connection without a DISCONNECT, as a power
// cut or a dead link would: the broker publishes the will. Tests use it.
func (f *Forwarder) dropConn() {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		c.drop()
	}
}

// onConnect subscribes before anything is published on the new connection
// (runs on its own goroutine, started by paho).
func (f *Forwarder) onConnect(c mqtt.Client) {
	f.mu.Lock()
	f.gen++
	gen := f.gen
	f.session, f.refused = false, nil
	lost := make(chan struct{})
	f.lost = lost
	f.mu.Unlock()
	topics := []string{f.tResult, f.tConfig}
	for _, s := range f.o.Subscribe {
		topics = append(topics, s.Topic)
	}
	refused, err := f.subscribe(c, topics)
	if err != nil {
		f.log.Warn("mqttfwd: subscribe failed; reconnecting", "err", err)
		f.dropConn()
		return
	}
	f.attempts.Store(0)
	if !f.setLink(gen, refused) {
		return // lost meanwhile
	}
	if len(refused) == 0 {
		f.log.Info("mqttfwd: connected", "broker", f.o.Broker)
	} else {
		f.logRefused(refused)
		go f.resubscribe(c, gen, lost)
	}
}

// setLink records what session gen has been granted and tells the loop.
// It does both under f.mu, as onLost does, so that the loop sees the
// session's changes in the order they happened. It reports false when the
// session is over.
func (f *Forwarder) setLink(gen int64, refused []string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return false
	}
	f.session, f.refused = true, refused
	forward := !slices.Contains(refused, f.tResult)
	f.connected.Store(forward)
	f.event(link{up: true, forward: forward})
	return true
}

// subscribe subscribes to topics (QoS 1) and returns those the broker
// refused in its SUBACK. err is for a subscribe that did not complete.
func (f *Forwarder) subscribe(c mqtt.Client, topics []string) ([]string, error) {
	m := make(map[string]byte, len(topics))
	for _, t := range topics {
		m[t] = 1
	}
	t := c.SubscribeMultiple(m, f.onMessage)
	if !t.WaitTimeout(opTimeout) {
		return nil, errors.New("mqttfwd: no SUBACK within " + opTimeout.String())
	}
	if err := t.Error(); err != nil {
		return nil, err
	}
	granted := map[string]byte{}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		granted = st.Result()
	}
	var refused []string
	for _, topic := range topics {
		if q, ok := granted[topic]; !ok || q > 2 { // 0x80: failure
			refused = append(refused, topic)
		}
	}
	return refused, nil
}

func (f *Forwarder) logRefused(refused []string) {
	f.subLog.Log(f.log, f.clk.Now(), slog.LevelError, "refused", "mqttfwd: the broker refused subscriptions (SUBACK 0x80: its ACL?); "+
		"without the result topic no checkin is forwarded; subscribing again with backoff",
		"broker", f.o.Broker, "refused", refused)
}

// resubscribe subscribes again to what the broker refused on session gen,
// with the reconnect backoff (real time, as the reconnects), until it is
// granted or the session ends.
func (f *Forwarder) resubscribe(c mqtt.Client, gen int64, lost <-chan struct{}) {
	for n := int64(1); ; n++ {
		t := time.NewTimer(f.backoff(n))
		select {
		case <-t.C:
		case <-lost:
			t.Stop()
			return
		case <-f.runCtx.Done():
			t.Stop()
			return
		}
		f.mu.Lock()
		todo := slices.Clone(f.refused)
		current := f.gen == gen
		f.mu.Unlock()
		if !current || len(todo) == 0 {
			return
		}
		f.resubscribes.Add(1)
		refused, err := f.subscribe(c, todo)
		if err != nil {
			f.log.Debug("mqttfwd: subscribe again", "topics", todo, "err", err)
			continue
		}
		if !f.setLink(gen, refused) {
			return
		}
		if len(refused) == 0 {
			f.log.Info("mqttfwd: subscriptions granted", "broker", f.o.Broker, "topics", todo)
			return
		}
		f.logRefused(refused)
	}
}

func (f *Forwarder) onLost(_ mqtt.Client, err error) {
	f.mu.Lock()
	f.gen++
	f.session, f.refused = false, nil
	f.connected.Store(false)
	if f.lost != nil {
		close(f.lost)
		f.lost = nil
	}
	f.event(link{})
	f.mu.Unlock()
	f.log.Warn("mqttfwd: connection lost", "err", err)
}

func (f *Forwarder) event(l link) {
	select {
	case f.events <- l:
	case <-f.done:
	}
}

// onMessage hands payloads to the loop; it never touches the outbox.
func (f *Forwarder) onMessage(_ mqtt.Client, m mqtt.Message) {
	switch m.Topic() {
	case f.tResult:
		f.results.push(m.Payload(), f.done)
	case f.tConfig:
		if f.o.OnConfig != nil && len(m.Payload()) > 0 { // empty = retained config cleared
			f.o.OnConfig(m.Payload())
		}
	default:
		if h := f.extra[m.Topic()]; h != nil {
			h(m.Payload())
		}
	}
}

// Publish publishes payload on topic, QoS 1 and not retained, on the
// current session and waits for the broker's acknowledgement (at most the
// operation timeout). Without a session it returns ErrOffline: the caller
// asks again later. For messages other than checkins and Status, which the
// forwarder publishes itself.
func (f *Forwarder) Publish(topic string, payload []byte) error {
	f.mu.Lock()
	up := f.session
	f.mu.Unlock()
	if !up || f.client == nil {
		return ErrOffline
	}
	t := f.client.Publish(topic, 1, false, payload)
	if !t.WaitTimeout(opTimeout) {
		return fmt.Errorf("mqttfwd: publish %s: no acknowledgement within %s", topic, opTimeout)
	}
	if err := t.Error(); errors.Is(err, mqtt.ErrNotConnected) {
		// The session flag is set and cleared on paho's goroutines: between
		// a lost connection and its handler, paho already refuses.
		return fmt.Errorf("%w: publish %s: %v", ErrOffline, topic, err)
	} else if err != nil {
		return fmt.Errorf("mqttfwd: publish %s: %w", topic, err)
	}
	return nil
}

// loop owns the window until ctx is done.
func (f *Forwarder) loop(ctx context.Context) {
	retryT := f.clk.NewTimer(time.Hour)
	retryT.Stop()
	var retryAt time.Time
	statusT := f.clk.NewTimer(time.Hour)
	statusT.Stop()
	var lastStatus, statusAt time.Time
	dirty := false
	f.more = true

	publishStatus := func() {
		if !f.online {
			return
		}
		f.publishStatus(ctx)
		lastStatus = f.clk.Now()
		dirty = false
	}
	for {
		if f.forward {
			f.refill(ctx)
		}
		f.turns.Add(1)
		// Arm the retry timer for the oldest flight.
		if at, ok := f.nextRetry(); ok && f.forward {
			if !at.Equal(retryAt) {
				retryAt = at
				retryT.Reset(at.Sub(f.clk.Now()))
			}
		} else if !retryAt.IsZero() {
			retryT.Stop()
			retryAt = time.Time{}
		}
		// Arm the status timer while pending changed since the last one.
		if dirty && f.online {
			if at := lastStatus.Add(StatusEvery); !at.Equal(statusAt) {
				statusAt = at
				statusT.Reset(at.Sub(f.clk.Now()))
			}
		} else if !statusAt.IsZero() {
			statusT.Stop()
			statusAt = time.Time{}
		}

		select {
		case <-ctx.Done():
			retryT.Stop()
			statusT.Stop()
			return
		case <-f.kick:
			f.more = true
			dirty = true
		case <-f.rescan:
			f.cursor = 0
			f.more = true
			dirty = true
		case <-f.statusKick:
			publishStatus()
		case ids := <-f.freed:
			for _, id := range ids {
				delete(f.inflight, id)
			}
			dirty = true
		case l := <-f.events:
			wasOnline, wasForward := f.online, f.forward
			f.online, f.forward = l.up, l.up && l.forward
			if f.forward && !wasForward {
				f.more = true
				f.republishAll()
			}
			if f.online && (!wasOnline || f.forward != wasForward) {
				publishStatus()
			}
		case <-retryT.C():
			retryAt = time.Time{}
			if f.forward {
				f.republishDue()
			}
		case <-statusT.C():
			statusAt = time.Time{}
			publishStatus()
		}
	}
}

// refill loads and publishes checkins beyond the cursor while the window
// has room.
func (f *Forwarder) refill(ctx context.Context) {
	for f.more && len(f.inflight) < f.o.Window && ctx.Err() == nil {
		limit := f.o.Window - len(f.inflight)
		items, err := f.ob.Pending(ctx, f.cursor, limit)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Error("mqttfwd: read outbox", "err", err)
			}
			return // tried again on the next event
		}
		if len(items) < limit {
			f.more = false
		}
		now := f.clk.Now()
		for _, it := range items {
			f.cursor = max(f.cursor, it.Seq)
			if _, ok := f.inflight[it.ID]; ok {
				continue
			}
			fl := &flight{item: it}
			f.inflight[it.ID] = fl
			f.send(fl, now)
			f.published.Add(1)
		}
	}
}

// send publishes a flight without waiting for its token: the Result, not
// the PUBACK, completes it.
func (f *Forwarder) send(fl *flight, now time.Time) {
	fl.sentAt = now
	fl.gen++
	f.fifo = append(f.fifo, fifoEntry{fl.item.ID, fl.gen})
	if len(f.fifo) > 4*f.o.Window+1024 {
		f.compactFIFO()
	}
	t := f.client.Publish(f.tCheckin, 1, false, fl.item.Body)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			f.log.Debug("mqttfwd: publish", "seq", fl.item.Seq, "err", err)
		}
	default:
	}
}

// compactFIFO drops stale entries (a stuck oldest flight keeps them from
// being popped).
func (f *Forwarder) compactFIFO() {
	live := f.fifo[:0:0]
	for _, e := range f.fifo {
		if fl, ok := f.inflight[e.id]; ok && fl.gen == e.gen {
			live = append(live, e)
		}
	}
	f.fifo = live
}

// nextRetry is when the oldest flight is due for a republish.
func (f *Forwarder) nextRetry() (time.Time, bool) {
	for len(f.fifo) > 0 {
		e := f.fifo[0]
		if fl, ok := f.inflight[e.id]; ok && fl.gen == e.gen {
			return fl.sentAt.Add(f.o.RetryAfter), true
		}
		f.fifo[0] = fifoEntry{}
		f.fifo = f.fifo[1:]
	}
	f.fifo = nil // let the backing array go
	return time.Time{}, false
}

// republishDue republishes, in seq order, every flight whose Result is
// overdue.
func (f *Forwarder) republishDue() {
	now := f.clk.Now()
	var due []*flight
	for _, fl := range f.inflight {
		if !now.Before(fl.sentAt.Add(f.o.RetryAfter)) {
			due = append(due, fl)
		}
	}
	f.resend(due, now)
}

// republishAll republishes, in seq order, every flight awaiting a Result
// (after a reconnect).
func (f *Forwarder) republishAll() {
	due := make([]*flight, 0, len(f.inflight))
	for _, fl := range f.inflight {
		due = append(due, fl)
	}
	f.resend(due, f.clk.Now())
}

func (f *Forwarder) resend(due []*flight, now time.Time) {
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b *flight) int { return int(a.item.Seq - b.item.Seq) })
	f.log.Info("mqttfwd: republishing checkins without a Result", "n", len(due), "firstSeq", due[0].item.Seq)
	for _, fl := range due {
		f.send(fl, now)
		f.republished.Add(1)
	}
}

// applier applies Results until ctx is done, each run of payloads that
// queued up meanwhile in one outbox transaction: the slower the disk, the
// bigger the batch.
//
// Results the outbox could not apply (a full disk) are kept and applied
// again, with those that arrived meanwhile, after a backoff (applyRetryMin
// doubling to applyRetryMax, real time): dropping them would leave their
// checkins to RetryAfter and a second answer from central.
func (f *Forwarder) applier(ctx context.Context) {
	var retry [][]byte
	fails := 0
	for {
		batch := retry
		retry = nil
		if len(batch) > 0 {
			// Paces real disk writes, so real time (as the reconnects): a
			// test's fake clock must not wedge it.
			t := time.NewTimer(min(applyRetryMax, applyRetryMin<<min(fails-1, 10)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-f.results.ready:
			}
		}
		batch = f.results.take(batch, maxResultRun-len(batch))
		// Under load (more than one Result waiting) linger briefly for a
		// bigger batch: a delete transaction costs far more than a row.
		// This wait only groups work, so it uses real time, not f.clk.
		if len(batch) > 1 && len(batch) < lingerBatch {
			t := time.NewTimer(lingerMax)
		linger:
			for len(batch) < lingerBatch {
				select {
				case <-f.results.ready:
					batch = f.results.take(batch, maxResultRun-len(batch))
				case <-t.C:
					break linger
				case <-ctx.Done():
					break linger
				}
			}
			t.Stop()
		}
		for len(batch) > 0 {
			run := batch[:min(len(batch), maxResultRun)]
			if !f.applyResults(ctx, run) {
				fails++
				retry = batch
				break
			}
			fails = 0
			batch = batch[len(run):]
		}
	}
}

// applyResults decodes a run of Result payloads and deletes their checkins
// in one outbox transaction. It reports false when the outbox failed (the
// run is to be applied again).
//
// The Results' window slots are handed back to the loop before the
// transaction, not after it (again on a retry: freeing twice is harmless).
// Central has booked these checkins, so the loop publishes the next ones
// while the outbox commits: its fsync overlaps the round trips instead of
// idling the window. A checkin freed so is never republished by the loop,
// not even while a full disk keeps its Result from being applied; after a
// restart before the commit it is published again and central answers it
// with the identical Result.
func (f *Forwarder) applyResults(ctx context.Context, payloads [][]byte) (ok bool) {
	rs := make([]protocol.Result, 0, len(payloads))
	acks := make([]queue.Ack, 0, len(payloads))
	for i, p := range payloads {
		if p == nil {
			continue // a bad payload, already counted
		}
		r, err := protocol.DecodeResult(p)
		if err != nil {
			f.badPayload(err, len(p))
			payloads[i] = nil // counted once, not again on a retry
			continue
		}
		rs = append(rs, r)
		keep := r.Status == protocol.StatusSaved || r.Status == protocol.StatusMaximumReached
		acks = append(acks, queue.Ack{ID: r.ID, KeepHistory: keep})
	}
	if len(acks) == 0 {
		return true
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	select {
	case f.freed <- ids:
	case <-ctx.Done():
	}
	known, err := f.ob.DoneBatch(context.WithoutCancel(ctx), acks)
	if err != nil {
		// The checkins stay queued (out of the window: central has them);
		// the applier applies these Results again after a backoff.
		f.applyFailures.Add(1)
		f.subLog.Log(f.log, f.clk.Now(), slog.LevelError, "apply", "mqttfwd: apply results; retrying", "n", len(acks), "err", err)
		return errors.Is(err, queue.ErrClosed) // closed: nothing to retry
	}
	for i, r := range rs {
		f.nresults.Add(1)
		if !known[i] {
			f.unknown.Add(1)
		}
		if f.o.OnResult != nil {
			f.o.OnResult(r, known[i])
		}
	}
	return true
}

// badPayload counts a payload that is not a Result and logs it, at most
// once per badLogEvery (a broken central must not flood the journal).
func (f *Forwarder) badPayload(err error, size int) {
	f.bad.Add(1)
	f.badLog.Log(f.log, f.clk.Now(), slog.LevelWarn, "bad-result", "mqttfwd: dropped a bad result payload",
		"topic", f.tResult, "bytes", size, "err", err)
}

// publishStatus publishes the retained Status without waiting.
func (f *Forwarder) publishStatus(ctx context.Context) {
	var s protocol.Status
	if f.o.Status != nil {
		s = f.o.Status()
	}
	now := f.clk.Now()
	s.Online = true
	s.DeviceID = f.o.DeviceID
	s.At = protocol.FormatTime(now)
	if st, err := f.ob.Stats(ctx); err == nil {
		s.Pending = st.Pending
		s.OldestPendingS = 0
		if !st.OldestQueuedAt.IsZero() {
			s.OldestPendingS = max(0, int64(now.Sub(st.OldestQueuedAt)/time.Second))
		}
	} else if ctx.Err() == nil {
		f.log.Error("mqttfwd: status: outbox stats", "err", err)
	}
	f.client.Publish(f.tStatus, 1, true, s.Encode())
}
