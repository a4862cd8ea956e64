// Package fleetsim runs a fleet of simulated kiosks in one process — each the
// real kiosk assembly with its own SQLite queue and MQTT client — against a
// real broker and the reference ingest, with chaos (broker restarts, kiosk
// kills, ingest outages), then drains and reconciles every tap against the
// ledger. It proves the system at fleet scale and that no state is global.
package fleetsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uitpas/tap-kiosk/device"
	"github.com/uitpas/tap-kiosk/device/host"
	"github.com/uitpas/tap-kiosk/ingest"
	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/kiosk"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/reader"
)

// Opts configure a run.
type Opts struct {
	Kiosks   int
	Rate     float64       // taps per second per kiosk
	Duration time.Duration // of tapping
	// Broker is an MQTT URL; empty starts a broker of our own (Mosquitto,
	// or the embedded one where none is installed; needed for broker
	// restarts).
	Broker string
	// Dir keeps the run's state: each run makes a fresh subdirectory of it
	// (run-YYYYMMDDTHHMMSSZ, created with Dir when missing) for the kiosks'
	// queues, the ledger and the broker, so runs never see each other's
	// taps; Summary.Dir names it. Empty: a temporary directory, removed at
	// the end.
	Dir string
	// DB is the ledger: empty for SQLite in the run's directory, or
	// postgres://…, which must hold no entries yet (a previous run's would
	// count as duplicates).
	DB string
	// Ingests is how many ingest instances share the checkins (a shared
	// subscription when more than one).
	Ingests int
	// Window bounds each kiosk's checkins in flight.
	Window int
	// IngestBatch is the ingests' most checkins per transaction (0: the
	// ingest's default, 256). After an outage the backlog comes at once, and
	// a batch costs about the same time whatever its size on a loaded host.
	IngestBatch int
	// IngestBatchWait is how long an ingest's batch waits for more checkins
	// (kiosk-ingest -batch-wait; 0: its default, 2 ms). Longer batches cost
	// central less processor per checkin where it is short of processors.
	IngestBatchWait time.Duration
	// RetryAfter is how long a kiosk waits for a Result before it publishes
	// the checkin again (default 10 s; a kiosk's own default is 30 s). A
	// central slower than that gets every checkin again.
	RetryAfter time.Duration
	// Chaos.
	BrokerRestartEvery, BrokerDown time.Duration
	// BrokerOutageAt, when set, takes the broker down once, this long into
	// the run, for BrokerDown; the summary's recoverS says how long the
	// backlog took to drain after it came back.
	BrokerOutageAt           time.Duration
	KillEvery, KillDown      time.Duration
	IngestDownAt, IngestDown time.Duration
	// DrainTimeout bounds the drain after tapping stops.
	DrainTimeout time.Duration
	// StartParallel is how many kiosks start at once (default 32).
	StartParallel int
	// Processes > 1 splits the kiosks over that many processes (Spawn runs
	// each), since one process can hold only so many open files (about 8
	// per kiosk: its queue's connections and its broker connection). This
	// process then runs the broker, the ledger's setup and the ingests and
	// merges the shards' summaries.
	Processes int
	// Spawn runs one shard of a Processes run (the options it gets have
	// Shard set) in another process and returns its summary.
	Spawn func(ctx context.Context, shard Opts) (Summary, error)
	// Shard, in a shard's process, says it is one: its kiosks are numbered
	// from Shard.First, the ledger is set up already (by the parent), and
	// central (Broker, the ingests) is the parent's.
	Shard       *Shard
	Seed        uint64
	Logger      *slog.Logger // progress; nil: discard
	KioskLogger *slog.Logger // the kiosks' own logs; nil: discard
	// Now names the run's directory; nil: time.Now.
	Now func() time.Time
}

// Shard is one process's part of a fleet split over several.
type Shard struct {
	First int // the first kiosk's number (fleet-NNNN)
	// Gate, when set, is a directory the shards start tapping through
	// together: each, once its kiosks are up, makes up-First in it and
	// waits for the parent to make "go" there when every shard is up. A
	// shard that tapped while the others still started its kiosks would
	// measure the starting (thousands of connections and databases
	// opening), not the fleet.
	Gate string
}

// shardGCPercent is a shard's GOGC once its kiosks are up (GOGC set in the
// environment wins).
const shardGCPercent = 400

// gateWait bounds a shard's wait for the others at the gate.
const gateWait = 10 * time.Minute

// waitGate marks this shard up at the gate and waits until it opens.
func (s *sim) waitGate(ctx context.Context) error {
	g := s.o.Shard.Gate
	if err := os.WriteFile(filepath.Join(g, fmt.Sprintf("up-%d", s.o.Shard.First)), nil, 0o644); err != nil {
		return fmt.Errorf("fleetsim: gate: %w", err)
	}
	deadline := time.Now().Add(gateWait)
	for {
		if _, err := os.Stat(filepath.Join(g, "go")); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleetsim: gate %s still shut after %v", g, gateWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// errShardReturned: a shard ended before every shard was up (it failed).
var errShardReturned = errors.New("fleetsim: a shard ended before the fleet was up")

// openGate makes "go" in gate once n shards are up in it. It gives up when
// returned is closed (a shard ended before tapping: it failed) or ctx
// ends.
func openGate(ctx context.Context, gate string, n int, returned <-chan struct{}) error {
	for {
		ups, err := filepath.Glob(filepath.Join(gate, "up-*"))
		if err != nil {
			return fmt.Errorf("fleetsim: gate: %w", err)
		}
		if len(ups) >= n {
			if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o644); err != nil {
				return fmt.Errorf("fleetsim: gate: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-returned:
			return errShardReturned
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Summary is the outcome of a run, printed as one JSON line.
type Summary struct {
	Kiosks       int   `json:"kiosks"`
	Taps         int64 `json:"taps"`
	Saved        int64 `json:"saved"`
	AlreadySaved int64 `json:"alreadySaved"`
	Blocked      int64 `json:"blocked"`
	// Retaps: a card tapped again within the kiosk's debounce window, which
	// is the same tap answered again with its decision, not a new saved one.
	Retaps        int64   `json:"retaps"`
	OtherOutcomes int64   `json:"otherOutcomes"`
	Booked        int64   `json:"booked"`
	LedgerRows    int64   `json:"ledgerRows"`
	Lost          int64   `json:"lost"`
	Duplicates    int64   `json:"duplicates"`
	ResultP50Ms   float64 `json:"resultP50Ms"`
	ResultP99Ms   float64 `json:"resultP99Ms"`
	// CentralP50Ms and CentralP99Ms are central's own share of the wait:
	// from a checkin's receipt by the ingest to its Result handed to the
	// broker (the queue, the batch, the ledger's commit). The rest of
	// ResultP99Ms is the broker's two deliveries and the kiosk itself,
	// which on a host that also runs the fleet waits for a processor.
	CentralP50Ms   float64 `json:"centralP50Ms,omitempty"`
	CentralP99Ms   float64 `json:"centralP99Ms,omitempty"`
	MaxPending     int     `json:"maxPending"`
	DrainS         float64 `json:"drainS"`
	RecoverS       float64 `json:"recoverS,omitempty"`
	Processes      int     `json:"processes,omitempty"`
	FleetUpS       float64 `json:"fleetUpS"`
	IngestBatches  int64   `json:"ingestBatches,omitempty"`
	IngestBatch    float64 `json:"ingestBatch,omitempty"`
	IngestLedgerS  float64 `json:"ingestLedgerS,omitempty"`
	IngestReceived int64   `json:"ingestReceived,omitempty"`
	IngestReplays  int64   `json:"ingestReplays,omitempty"`
	RSSMB          float64 `json:"rssMB"`
	KioskKB        float64 `json:"kioskKB"`
	BrokerRestarts int     `json:"brokerRestarts"`
	KioskKills     int     `json:"kioskKills"`
	IngestStops    int     `json:"ingestStops"`
	Dir            string  `json:"dir,omitempty"`
}

// SetupError is an error that stopped the run before any tap: bad options,
// or a directory, broker, ledger, ingest or kiosk that could not be set up.
// Nothing was measured.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

func setupErr(err error) error {
	if err == nil {
		return nil
	}
	return &SetupError{err}
}

const eventID = "evt-fleet"

// sim is one run.
type sim struct {
	o      Opts
	log    *slog.Logger
	dir    string
	broker *testbroker.Broker
	url    string
	ledger *ingest.Ledger
	kiosks []*node
	host   *fleetHost // the kiosks' device.Host, one for the fleet
	rng    *rand.Rand
	rngMu  sync.Mutex

	fresh   atomic.Int64 // next unused known card
	taps    atomic.Int64
	counts  sync.Map // outcome → *atomic.Int64
	mu      sync.Mutex
	saved   map[string]string    // checkin id → device
	tappedT map[string]time.Time // checkin id → decision time
	lat     []time.Duration
	blocked []string
	ingests []*ingestProc
	summary Summary
	upAt    atomic.Pointer[time.Time] // when the broker came back from the outage
	// What the ingests did: their batches and the ledger's time in them,
	// and (added when an ingest stops) the checkins they received and how
	// many of those were replays.
	batches, batched, ledgerNs    atomic.Int64
	answeredMu                    sync.Mutex
	answered                      []time.Duration // receipt → Result, per checkin answered
	ingestReceived, ingestReplays atomic.Int64
}

// onAnswered is the ingests' OnAnswered: called on their batches' bookings.
func (s *sim) onAnswered(waited time.Duration) {
	s.answeredMu.Lock()
	s.answered = append(s.answered, waited)
	s.answeredMu.Unlock()
}

// onBatch is the ingests' OnBatch: called on their batches' bookings.
func (s *sim) onBatch(size int, commit time.Duration) {
	s.batches.Add(1)
	s.batched.Add(int64(size))
	s.ledgerNs.Add(int64(commit))
}

// node is one kiosk of the fleet, which may be down for a while.
type node struct {
	id     string
	cfg    provisioning.Config
	mu     sync.Mutex
	k      *kiosk.Kiosk
	cancel context.CancelFunc
	done   chan error
	used   []string // cards tapped here, for repeats
}

type ingestProc struct {
	n      int
	cancel context.CancelFunc
	done   chan error
}

// Run runs the fleet and returns its summary; an error means the run itself
// failed (not that taps were lost: see Summary.Lost), a *SetupError when it
// failed before any tap.
func Run(ctx context.Context, o Opts) (Summary, error) {
	if o.Kiosks < 1 || o.Rate <= 0 || o.Duration <= 0 {
		return Summary{}, setupErr(errors.New("fleetsim: kiosks, rate and duration must be positive"))
	}
	if o.Broker != "" && (o.BrokerRestartEvery > 0 || o.BrokerOutageAt > 0) {
		return Summary{}, setupErr(errors.New("fleetsim: broker restarts and outages need a broker of our own (no -broker)"))
	}
	if o.Processes > 1 && (o.Spawn == nil || o.BrokerRestartEvery > 0 || o.BrokerOutageAt > 0 || o.KillEvery > 0 || o.IngestDown > 0) {
		return Summary{}, setupErr(errors.New("fleetsim: a fleet over several processes runs without chaos (and needs Spawn)"))
	}
	if o.Shard != nil && o.Broker == "" {
		return Summary{}, setupErr(errors.New("fleetsim: a shard needs the parent's broker"))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ingests < 1 {
		o.Ingests = 1
	}
	if o.Window < 1 {
		o.Window = 32
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 10 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 3 * time.Minute
	}
	if o.StartParallel < 1 {
		o.StartParallel = 32
	}
	if o.Processes <= 1 {
		if err := raiseFileLimit(o.Kiosks); err != nil {
			return Summary{}, setupErr(err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.KioskLogger == nil {
		o.KioskLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &sim{o: o, log: o.Logger, host: newFleetHost(host.New(), time.Now), rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		saved: map[string]string{}, tappedT: map[string]time.Time{}}
	s.summary.Kiosks = o.Kiosks
	var err error
	if o.Dir == "" {
		if s.dir, err = os.MkdirTemp("", "kiosk-fleetsim-"); err != nil {
			return Summary{}, setupErr(fmt.Errorf("fleetsim: %w", err))
		}
		defer os.RemoveAll(s.dir)
	} else {
		if s.dir, err = RunDir(o.Dir, o.Now()); err != nil {
			return Summary{}, setupErr(err)
		}
		s.summary.Dir = s.dir
		s.log.Info("state kept", "dir", s.dir)
	}
	st := &testbroker.Standalone{Dir: s.dir}
	defer st.Close()
	if s.url = o.Broker; s.url == "" {
		err = st.Run(func() error {
			s.broker = testbroker.StartOpts(st, testbroker.Opts{Tuning: "max_connections -1\n"})
			return nil
		})
		if err != nil {
			return s.summary, setupErr(fmt.Errorf("fleetsim: broker: %w", err))
		}
		s.url = s.broker.URL()
		s.log.Info("broker started", "url", s.url, "kind", s.broker.Kind)
	}
	err = st.Run(func() error { return s.run(ctx) })
	if n := s.batches.Load(); n > 0 {
		s.summary.IngestBatches = n
		s.summary.IngestBatch = float64(s.batched.Load()) / float64(n)
		s.summary.IngestLedgerS = time.Duration(s.ledgerNs.Load()).Seconds()
	}
	s.summary.IngestReceived, s.summary.IngestReplays = s.ingestReceived.Load(), s.ingestReplays.Load()
	s.answeredMu.Lock()
	if len(s.answered) > 0 {
		l := queue.Summarise(s.answered)
		s.summary.CentralP50Ms = float64(l.P50.Microseconds()) / 1000
		s.summary.CentralP99Ms = float64(l.P99.Microseconds()) / 1000
	}
	s.answeredMu.Unlock()
	return s.summary, err
}

// RunDir makes a fresh directory for one run below dir (created when
// missing), named after the time: run-20260102T150405Z, with -2, -3, …
// when a run of the same second has it.
func RunDir(dir string, now time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("fleetsim: -dir: %w", err)
	}
	base := filepath.Join(dir, "run-"+now.UTC().Format("20060102T150405Z"))
	for i := 1; ; i++ {
		d := base
		if i > 1 {
			d = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Mkdir(d, 0o755)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, os.ErrExist) || i == 1000 {
			return "", fmt.Errorf("fleetsim: -dir: %w", err)
		}
	}
}

func (s *sim) run(ctx context.Context) error {
	if err := s.openLedger(ctx); err != nil {
		return setupErr(err)
	}
	defer s.ledger.Close()
	for i := range s.central() {
		if err := s.startIngest(i); err != nil {
			return setupErr(err)
		}
	}
	defer s.stopIngests()
	if s.o.Processes > 1 {
		return s.runShards(ctx)
	}
	s.blocked = []string{"04B10C00000001", "04B10C00000002", "04B10C00000003"} // the hot list
	t0 := time.Now()
	defer func() {
		// At once: each waits for its connection's goodbye.
		var wg sync.WaitGroup
		for _, n := range s.kiosks {
			wg.Go(n.stop)
		}
		wg.Wait()
	}()
	rss0 := rssKB()
	for i := range s.o.Kiosks {
		s.kiosks = append(s.kiosks, s.newNode(s.first()+i))
	}
	if err := s.startAll(s.kiosks); err != nil {
		return setupErr(err)
	}
	s.summary.FleetUpS = time.Since(t0).Seconds()
	if rss := rssKB(); rss > 0 && rss0 > 0 {
		s.summary.RSSMB = float64(rss) / 1024
		s.summary.KioskKB = float64(rss-rss0) / float64(len(s.kiosks))
	}
	s.log.Info("fleet up", "kiosks", len(s.kiosks), "in", time.Since(t0).Round(time.Millisecond),
		"rssMB", s.summary.RSSMB, "kioskKB", s.summary.KioskKB)
	if s.o.Shard != nil && os.Getenv("GOGC") == "" {
		// A shard's collector stops 1 666 kiosks at once for as long as it
		// marks their heap, which no fleet of machines does (each kiosk has
		// its own, for a heap of some 100 KiB): collect less often once the
		// memory per kiosk is measured, as the shard runs niced for the
		// same reason. 131 MB live then grows to about 650 MB.
		defer debug.SetGCPercent(debug.SetGCPercent(shardGCPercent)) // shards of a test run in its process
	}
	if s.o.Shard != nil && s.o.Shard.Gate != "" {
		if err := s.waitGate(ctx); err != nil {
			return setupErr(err)
		}
	}

	runCtx, stopTaps := context.WithTimeout(ctx, s.o.Duration)
	defer stopTaps()
	var wg sync.WaitGroup
	for _, n := range s.kiosks {
		wg.Add(1)
		go func() { defer wg.Done(); s.tapLoop(runCtx, n) }()
	}
	chaosDone := make(chan struct{})
	go func() { defer close(chaosDone); s.chaos(runCtx) }()
	pendingDone := make(chan struct{})
	pctx, stopPending := context.WithCancel(ctx)
	defer stopPending()
	go func() { defer close(pendingDone); s.watchPending(pctx) }()
	wg.Wait()
	<-chaosDone
	s.log.Info("tapping done; draining", "taps", s.taps.Load())

	// Every kiosk up, the broker and every ingest up: drain.
	if err := s.startAll(s.kiosks); err != nil {
		return err
	}
	if s.broker != nil {
		s.broker.Start()
	}
	for i := range s.central() {
		if err := s.startIngest(i); err != nil {
			return err
		}
	}
	d0 := time.Now()
	for {
		total, err := s.pending(ctx)
		if err != nil {
			return err
		}
		if total == 0 {
			break
		}
		if time.Since(d0) > s.o.DrainTimeout {
			s.log.Error("drain timed out", "pending", total)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.summary.DrainS = time.Since(d0).Seconds()
	stopPending()
	<-pendingDone
	return s.reconcile(ctx)
}

// ledgerPath is the ledger's location: -db, or SQLite in the run's
// directory.
func (s *sim) ledgerPath() string {
	if s.o.DB != "" {
		return s.o.DB
	}
	return filepath.Join(s.dir, "ledger.db")
}

func (s *sim) openLedger(ctx context.Context) error {
	lo := ingest.DefaultOpts()
	lo.Synchronous = "NORMAL" // the simulator's ledger is no record; registration must be quick
	lo.Logger = s.log.With("part", "ledger")
	l, err := ingest.Open(s.ledgerPath(), lo)
	if err != nil {
		return fmt.Errorf("fleetsim: ledger: %w", err)
	}
	s.ledger = l
	if s.o.Shard != nil {
		return nil // set up by the parent
	}
	// A ledger with entries already (a previous run's, in PostgreSQL) would
	// make every one of them a duplicate of this run.
	errNotEmpty := errors.New("not empty")
	if err := l.Entries(ctx, func(ingest.Entry) error { return errNotEmpty }); errors.Is(err, errNotEmpty) {
		return errors.New("fleetsim: ledger: -db holds entries already (a previous run's?): give an empty database")
	} else if err != nil {
		return fmt.Errorf("fleetsim: ledger: %w", err)
	}
	// Every simulated kiosk is assigned the fleet's event, as central's
	// config push records it.
	ev := ingest.Event{ID: eventID, Points: 1, Period: protocol.PeriodDay, Volume: 1}
	as := make([]ingest.Assignment, s.o.Kiosks)
	for i := range as {
		as[i] = ingest.Assignment{DeviceID: deviceID(i), Serial: 1, CounterID: "balie-fleet",
			Event: ev, AssignedAt: time.Now().Add(-time.Hour)}
	}
	if _, err := l.AssignMany(ctx, as); err != nil {
		return fmt.Errorf("fleetsim: ledger: %w", err)
	}
	// The known passholders: enough fresh cards for every tap (of every
	// shard: each has its own range of cards, from its first kiosk on).
	var cards []int
	for _, sh := range s.shards() {
		n := int(float64(sh.kiosks)*s.o.Rate*s.o.Duration.Seconds()*1.1) + 100
		for i := range n {
			cards = append(cards, cardBase(sh.first)+i)
		}
	}
	// A few at once: on PostgreSQL each is a round trip.
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(cards) && errs[w] == nil; i += writers {
				errs[w] = l.Enroll(ctx, knownCard(cards[i]))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fleetsim: ledger: %w", err)
	}
	return nil
}

func knownCard(i int) string { return fmt.Sprintf("04A0%010X", i) }
func deviceID(i int) string  { return fmt.Sprintf("fleet-%04d", i) }

// cardBase is where the known cards of a shard starting at kiosk first
// begin: far enough apart that no two shards share a card.
func cardBase(first int) int { return first * 1_000_000 }

// first is this process's first kiosk.
func (s *sim) first() int {
	if s.o.Shard != nil {
		return s.o.Shard.First
	}
	return 0
}

// central is how many ingests this process runs: none in a shard (the
// parent's serve it).
func (s *sim) central() int {
	if s.o.Shard != nil {
		return 0
	}
	return s.o.Ingests
}

type shardRange struct{ first, kiosks int }

// shards are the kiosk ranges of the processes of a run (one: this one).
func (s *sim) shards() []shardRange {
	n := max(s.o.Processes, 1)
	if s.o.Shard != nil {
		return []shardRange{{s.o.Shard.First, s.o.Kiosks}}
	}
	var out []shardRange
	for i := range n {
		lo, hi := s.o.Kiosks*i/n, s.o.Kiosks*(i+1)/n
		out = append(out, shardRange{lo, hi - lo})
	}
	return out
}

// runShards runs the kiosks in Processes other processes against this
// process's broker and ingests, and merges their summaries: counts are
// summed, percentiles and the drain are the worst shard's, memory per kiosk
// the mean.
func (s *sim) runShards(ctx context.Context) error {
	shards := s.shards()
	sums := make([]Summary, len(shards))
	errs := make([]error, len(shards))
	gate := filepath.Join(s.dir, "gate")
	if err := os.Mkdir(gate, 0o755); err != nil {
		return setupErr(fmt.Errorf("fleetsim: gate: %w", err))
	}
	t0 := time.Now()
	// A shard that fails before the gate opens stops the others, which
	// would wait for it at the gate.
	sctx, stopShards := context.WithCancel(ctx)
	defer stopShards()
	returned := make(chan struct{}) // closed when the first shard ends
	var once sync.Once
	var wg sync.WaitGroup
	for i, sh := range shards {
		o := s.o
		// The shards reconcile against this process's ledger, SQLite too
		// (before, a shard opened an empty one of its own: all lost).
		o.Kiosks, o.Broker, o.DB, o.Processes, o.Spawn = sh.kiosks, s.url, s.ledgerPath(), 0, nil
		o.Shard = &Shard{First: sh.first, Gate: gate}
		o.Seed = s.o.Seed + uint64(i)
		o.Dir = filepath.Join(s.dir, fmt.Sprintf("shard-%d", i))
		wg.Go(func() {
			sums[i], errs[i] = s.o.Spawn(sctx, o)
			once.Do(func() { close(returned) })
		})
	}
	if err := openGate(ctx, gate, len(shards), returned); err != nil {
		s.log.Warn("fleetsim: the shards do not all start; stopping them", "err", err)
		stopShards()
	} else {
		s.summary.FleetUpS = time.Since(t0).Seconds()
		s.log.Info("fleet up in every shard; tapping", "shards", len(shards), "in", time.Since(t0).Round(time.Millisecond))
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fleetsim: shard: %w", err)
	}
	sum := &s.summary
	sum.Processes = len(shards)
	var kioskKB float64
	for _, x := range sums {
		sum.Taps += x.Taps
		sum.Saved += x.Saved
		sum.AlreadySaved += x.AlreadySaved
		sum.Blocked += x.Blocked
		sum.Retaps += x.Retaps
		sum.OtherOutcomes += x.OtherOutcomes
		sum.Booked += x.Booked
		sum.LedgerRows += x.LedgerRows
		sum.Lost += x.Lost
		sum.Duplicates += x.Duplicates
		sum.MaxPending += x.MaxPending
		sum.ResultP50Ms = max(sum.ResultP50Ms, x.ResultP50Ms)
		sum.ResultP99Ms = max(sum.ResultP99Ms, x.ResultP99Ms)
		sum.DrainS = max(sum.DrainS, x.DrainS)
		sum.FleetUpS = max(sum.FleetUpS, x.FleetUpS) // the gate's opening at least
		sum.RSSMB += x.RSSMB
		kioskKB += x.KioskKB * float64(x.Kiosks)
	}
	sum.KioskKB = kioskKB / float64(max(s.o.Kiosks, 1))
	// Rows of no shard's kiosk would be phantoms no shard counted.
	own := map[string]bool{}
	for i := range s.o.Kiosks {
		own[deviceID(i)] = true
	}
	err := s.ledger.Entries(ctx, func(e ingest.Entry) error {
		if !own[e.DeviceID] {
			sum.Duplicates++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fleetsim: reconcile: %w", err)
	}
	return nil
}
func unknownCard(i int) string { return fmt.Sprintf("04EE%010X", i) }

func (s *sim) startIngest(i int) error {
	for len(s.ingests) <= i {
		s.ingests = append(s.ingests, nil)
	}
	if p := s.ingests[i]; p != nil {
		return nil
	}
	so := ingest.ServiceOpts{Broker: s.url, ClientID: fmt.Sprintf("fleetsim-ingest-%d", i),
		Logger: s.log.With("part", "ingest", "n", i), OnBatch: s.onBatch, OnAnswered: s.onAnswered, BatchSize: s.o.IngestBatch,
		BatchWait: s.o.IngestBatchWait}
	if s.o.Ingests > 1 {
		so.SharedGroup = "fleetsim"
	}
	svc, err := ingest.New(s.ledger, so)
	if err != nil {
		return fmt.Errorf("fleetsim: ingest: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &ingestProc{n: i, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := svc.Run(ctx)
		c := svc.Counters()
		s.ingestReceived.Add(c.Received)
		s.ingestReplays.Add(c.Replays)
		p.done <- err
	}()
	s.ingests[i] = p
	return nil
}

func (s *sim) stopIngest(i int) {
	if p := s.ingests[i]; p != nil {
		p.cancel()
		<-p.done
		s.ingests[i] = nil
	}
}

func (s *sim) stopIngests() {
	for i := range s.ingests {
		s.stopIngest(i)
	}
}

func (s *sim) newNode(i int) *node {
	id := deviceID(i)
	c := provisioning.Default()
	c.DeviceID, c.StateDir, c.Path = id, filepath.Join(s.dir, "kiosks", id), "fleetsim"
	c.Event.ID, c.Event.Title, c.Event.CounterID = eventID, "Fleet", "balie-fleet"
	c.Event.BlockedChips = s.blocked
	c.Control.Socket = "" // a fleet of one process needs no sockets
	c.MQTT.Broker, c.MQTT.AllowInsecure = s.url, true
	c.MQTT.Window, c.MQTT.RetryAfter = s.o.Window, s.o.RetryAfter
	c.Display.SpaarcodeEvery = -1 // no idle ⇄ spaarcode alternation
	c.Queue.ReserveBytes = 0      // a thousand kiosks on one disk: no 8 MiB reserve each
	// The decision at once, as before tap.await_result: the Result latency
	// is measured from it.
	c.Tap.AwaitResult = 0
	return &node{id: id, cfg: c}
}

// startAll starts the kiosks that are down, StartParallel at a time: one
// after the other, a kiosk's queue, connection and subscription take some
// 50 ms, four minutes for 5 000 kiosks.
func (s *sim) startAll(ns []*node) error {
	sem := make(chan struct{}, s.o.StartParallel)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, n := range ns {
		sem <- struct{}{}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := n.start(s); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// start (re)starts the kiosk unless it runs.
func (n *node) start(s *sim) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.k != nil {
		return nil
	}
	ready := make(chan struct{})
	k, err := kiosk.New(n.cfg, kiosk.Opts{Version: "fleetsim", Logger: s.o.KioskLogger.With("kiosk", n.id), Host: s.host,
		OnReady: func() { close(ready) }, OnResult: s.onResult})
	if err != nil {
		return fmt.Errorf("fleetsim: %s: %w", n.id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.k, n.cancel, n.done = k, cancel, make(chan error, 1)
	go func() { n.done <- k.Run(ctx) }()
	select {
	case <-ready:
	case err := <-n.done:
		n.k = nil
		return fmt.Errorf("fleetsim: %s: %w", n.id, err)
	}
	return nil
}

// stop takes the kiosk down (its queue closed, as after a power cut the
// next start reopens it).
func (n *node) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.k == nil {
		return
	}
	n.cancel()
	<-n.done
	n.k = nil
}

func (n *node) kiosk() *kiosk.Kiosk {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.k
}

func (s *sim) onResult(r protocol.Result, known bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tappedT[r.ID]; ok {
		s.lat = append(s.lat, now.Sub(t))
		delete(s.tappedT, r.ID)
	}
}

func (s *sim) count(outcome string) {
	v, _ := s.counts.LoadOrStore(outcome, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (s *sim) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

func (s *sim) expDelay() time.Duration {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return time.Duration(s.rng.ExpFloat64() / s.o.Rate * float64(time.Second))
}

// pick chooses the next card: most fresh, some again, some unknown, some blocked.
func (s *sim) pick(n *node) string {
	switch r := s.intn(100); {
	case r < 8 && len(n.used) > 0:
		return n.used[s.intn(len(n.used))] // again here: local already-saved
	case r < 12 && s.fresh.Load() > 0:
		return knownCard(cardBase(s.first()) + s.intn(int(s.fresh.Load()))) // again elsewhere: central maximum-reached
	case r < 17:
		return unknownCard(s.intn(1 << 30))
	case r < 20:
		return s.blocked[s.intn(len(s.blocked))]
	default:
		return knownCard(cardBase(s.first()) + int(s.fresh.Add(1)-1))
	}
}

func (s *sim) tapLoop(ctx context.Context, n *node) {
	for {
		t := time.NewTimer(s.expDelay())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		k := n.kiosk()
		if k == nil {
			continue // down: nobody can tap
		}
		chip := s.pick(n)
		d, ok := s.tap(k, chip)
		if !ok {
			continue // the kiosk went down before the tap was read: no promise made
		}
		s.record(n, chip, d)
	}
}

// record counts a tap's decision d; a saved one is also a checkin central
// must book exactly once. A decision with the ID of one recorded already is
// a debounced re-tap (the kiosk answers the same tap again): a retap, not a
// second saved tap.
func (s *sim) record(n *node, chip string, d device.Decision) {
	s.taps.Add(1)
	n.used = append(n.used, chip)
	if d.ID == "" {
		s.count(d.Outcome)
		return
	}
	s.mu.Lock()
	_, again := s.saved[d.ID]
	if !again {
		s.saved[d.ID] = n.id
		s.tappedT[d.ID] = time.Now()
	}
	s.mu.Unlock()
	if again {
		s.count(outcomeRetap)
		return
	}
	s.count(d.Outcome)
}

// outcomeRetap counts the retaps beside the kiosk's own outcomes.
const outcomeRetap = "retap"

// tap puts chip on k's reader and waits for the decision, however long the
// kiosk takes (a loaded machine is slow, and a decision given up on would
// still be queued). It gives up only when the kiosk stops; the tap it was
// deciding then is finished first, so its decision is still read.
func (s *sim) tap(k *kiosk.Kiosk, chip string) (d device.Decision, ok bool) {
	uid, _ := reader.ParseChip(chip)
	ch, cancel := k.Core().Expect(chip)
	defer cancel()
	stopped := k.Stopped()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-stopped:
			stop()
		case <-ctx.Done():
		}
	}()
	if err := k.Presenter().Present(ctx, uid); err != nil {
		return d, false
	}
	select {
	case d = <-ch:
		return d, true
	case <-stopped:
		select {
		case d = <-ch:
			return d, true
		default:
			return d, false
		}
	}
}

// chaos restarts the broker, kills kiosks and stops the ingest on schedule.
func (s *sim) chaos(ctx context.Context) {
	var wg sync.WaitGroup
	every := func(period time.Duration, f func()) {
		if period <= 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(period)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					f()
				}
			}
		}()
	}
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	if s.broker != nil {
		every(s.o.BrokerRestartEvery, func() {
			s.log.Info("chaos: broker down", "for", s.o.BrokerDown)
			s.broker.Stop()
			s.summary.BrokerRestarts++
			sleep(s.o.BrokerDown)
			s.broker.Start()
			s.log.Info("chaos: broker up")
		})
	}
	if s.broker != nil && s.o.BrokerOutageAt > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sleep(s.o.BrokerOutageAt)
			if ctx.Err() != nil {
				return
			}
			s.log.Info("chaos: broker outage", "for", s.o.BrokerDown)
			s.broker.Stop()
			s.summary.BrokerRestarts++
			time.Sleep(s.o.BrokerDown) // the outage outlasts the tapping if it must
			s.broker.Start()
			now := time.Now()
			s.upAt.Store(&now)
			s.log.Info("chaos: broker up after the outage")
		}()
	}
	every(s.o.KillEvery, func() {
		n := s.kiosks[s.intn(len(s.kiosks))]
		s.log.Info("chaos: kiosk down", "kiosk", n.id, "for", s.o.KillDown)
		n.stop()
		s.summary.KioskKills++
		sleep(s.o.KillDown)
		if err := n.start(s); err != nil {
			s.log.Error("chaos: kiosk restart", "kiosk", n.id, "err", err)
		}
	})
	if s.o.IngestDown > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sleep(s.o.IngestDownAt)
			if ctx.Err() != nil {
				return
			}
			s.log.Info("chaos: ingest down", "for", s.o.IngestDown)
			s.stopIngest(0)
			s.summary.IngestStops++
			sleep(s.o.IngestDown)
			s.startIngest(0)
		}()
	}
	wg.Wait()
}

func (s *sim) pending(ctx context.Context) (int, error) {
	total := 0
	for _, n := range s.kiosks {
		k := n.kiosk()
		if k == nil {
			continue
		}
		st, err := k.Outbox().Counts() // no query: this runs every 250 ms over the fleet
		if err != nil {
			continue // stopping under us
		}
		total += st.Pending
	}
	return total, nil
}

func (s *sim) watchPending(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p, err := s.pending(ctx)
			if err != nil {
				continue
			}
			s.summary.MaxPending = max(s.summary.MaxPending, p)
			// Recovered: the backlog is down to about a second of taps.
			if up := s.upAt.Load(); up != nil && s.summary.RecoverS == 0 && float64(p) <= max(50, float64(s.o.Kiosks)*s.o.Rate) {
				s.summary.RecoverS = time.Since(*up).Seconds()
				s.log.Info("backlog drained after the outage", "in", s.summary.RecoverS, "pending", p)
			}
		}
	}
}

// reconcile checks every saved tap against the ledger.
func (s *sim) reconcile(ctx context.Context) error {
	sum := &s.summary
	sum.Taps = s.taps.Load()
	get := func(o string) int64 {
		if v, ok := s.counts.Load(o); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	sum.Saved, sum.AlreadySaved, sum.Blocked = get(device.OutcomeSaved), get(device.OutcomeAlreadySaved), get(device.OutcomeBlocked)
	sum.Retaps = get(outcomeRetap)
	sum.OtherOutcomes = sum.Taps - sum.Saved - sum.AlreadySaved - sum.Blocked - sum.Retaps
	seen := map[string]int{}
	seqs := map[string]int{}
	var own map[string]bool // in a shard, its kiosks'
	if s.o.Shard != nil {
		own = map[string]bool{}
		for _, n := range s.kiosks {
			own[n.id] = true
		}
	}
	err := s.ledger.Entries(ctx, func(e ingest.Entry) error {
		if own != nil && !own[e.DeviceID] {
			return nil // another shard's
		}
		sum.LedgerRows++
		seen[e.ID]++
		seqs[fmt.Sprintf("%s/%d", e.DeviceID, e.Seq)]++
		if e.Status == protocol.StatusSaved {
			sum.Booked++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fleetsim: reconcile: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.saved {
		if seen[id] == 0 {
			sum.Lost++
		}
	}
	for id, n := range seen {
		if n > 1 {
			sum.Duplicates += int64(n - 1)
		}
		if _, ok := s.saved[id]; !ok {
			sum.Duplicates++ // booked, but no tap of ours made it: a phantom
		}
	}
	for _, n := range seqs {
		if n > 1 {
			sum.Duplicates += int64(n - 1)
		}
	}
	if len(s.lat) > 0 {
		l := queue.Summarise(s.lat)
		sum.ResultP50Ms = float64(l.P50.Microseconds()) / 1000
		sum.ResultP99Ms = float64(l.P99.Microseconds()) / 1000
	}

	return nil
}

// fleetHostRefresh is how long the fleet's kiosks share one reading of the
// clock's synchronisation.
const fleetHostRefresh = 100 * time.Millisecond

// fleetHost is the kiosks' device.Host. They all run on one kernel clock,
// and each core asks it every second (and at every tap): the fleet reads
// adjtimex at most every fleetHostRefresh instead of once per kiosk.
type fleetHost struct {
	device.Host
	now func() time.Time

	mu     sync.Mutex
	at     time.Time // of the last reading; zero: none yet
	synced bool
}

func newFleetHost(h device.Host, now func() time.Time) *fleetHost {
	return &fleetHost{Host: h, now: now}
}

// ClockSynced is the kernel's answer, at most fleetHostRefresh old.
func (h *fleetHost) ClockSynced() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); h.at.IsZero() || now.Sub(h.at) >= fleetHostRefresh {
		h.synced, h.at = h.Host.ClockSynced(), now
	}
	return h.synced
}

// filesPerKiosk is what one simulated kiosk holds open, measured: its
// broker connection, its queue's database and WAL files three times (the
// queue's connections) and its shared-memory file, with room to spare.
const filesPerKiosk = 9

// raiseFileLimit makes sure the process (and the broker it starts, which
// inherits the limit) may open the files a fleet of kiosks needs: it raises
// the soft limit, and the hard one where it may (root), or says what to do.
func raiseFileLimit(kiosks int) error {
	need := uint64(kiosks*filesPerKiosk + 256)
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("fleetsim: open files limit: %w", err)
	}
	if l.Cur >= need {
		return nil
	}
	want := syscall.Rlimit{Cur: need, Max: max(l.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("fleetsim: %d kiosks need %d open files, the limit is %d (hard %d): raise it (ulimit -n) or split the fleet over processes (-processes): %w",
			kiosks, need, l.Cur, l.Max, err)
	}
	return nil
}

// rssKB is this process's resident set size (0 where /proc has none).
func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
