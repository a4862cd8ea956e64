// Package device is the kiosk core: a tap becomes a decision, a decision
// becomes a durable checkin and feedback. It depends on interfaces only —
// reader events, an outbox, a display, an indicator, an uplink — so that a
// simulated reader, the PN532 driver, a terminal or an OLED all plug in, and
// many cores can run in one process (the fleet simulator does).
//
// One goroutine, the tap loop (Run), owns all decisions and screens. Other
// goroutines talk to it through channels; the little state they read
// (status snapshot, waiters) sits behind a mutex.
package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/uitpas/tap-kiosk/clock"
	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/reader"
)

// Outcomes of a tap, as the control socket reports them.
const (
	OutcomeSaved        = "saved"
	OutcomeAlreadySaved = "already-saved"
	OutcomeBlocked      = "blocked"
	OutcomeUnreadable   = "unreadable-card"
	OutcomeNoEvent      = "no-event"
	OutcomeQueueFull    = "queue-full"
	OutcomeStorageError = "storage-error"
)

// Outbox is the durable queue the core writes checkins to. It also keeps
// the counts of tap outcomes that central reads from the Status: Enqueue
// counts a saved tap, CountOutcome every other outcome.
type Outbox interface {
	Used(ctx context.Context, chip, eventID, bucket string) (int, error)
	Enqueue(ctx context.Context, e queue.Entry) (queue.Item, error)
	CountOutcome(outcome string)
}

// Uplink is told when there is something to send.
type Uplink interface {
	Kick()
	StatusChanged()
}

// Host tells about the system clock (see device/host).
type Host interface {
	ClockSynced() bool
	BootID() string
	Uptime() time.Duration
}

// Event is the activity the kiosk saves points for.
type Event struct {
	ID          string
	Title       string
	CounterID   string
	Points      int
	Period      string
	Volume      int
	ValidFrom   time.Time // zero: open
	ValidUntil  time.Time // zero: open
	CheckinCode string
	Blocked     map[string]bool
	Serial      int64 // remote config serial; 0 for the local default
}

// inForce reports whether the event accepts check-ins at now.
func (e *Event) inForce(now time.Time) bool {
	if e.ID == "" {
		return false
	}
	if !e.ValidFrom.IsZero() && now.Before(e.ValidFrom) {
		return false
	}
	if !e.ValidUntil.IsZero() && !now.Before(e.ValidUntil) {
		return false
	}
	return true
}

// Opts configures a Core.
type Opts struct {
	DeviceID string
	Version  string
	Event    Event
	// Debounce: the same card again within this window is the same tap.
	Debounce time.Duration
	// Hold: how long a tap's screen stays up before idle returns.
	Hold time.Duration
	// Location buckets constraint periods; nil → UTC.
	Location *time.Location
	Lang     string
	Clock    clock.Clock
	Host     Host
	Logger   *slog.Logger
	// OnTick is called from the tap loop itself about every TickEvery:
	// kioskd sends the systemd watchdog from here, so a hung loop stops it.
	OnTick    func()
	TickEvery time.Duration
	// AwaitResult: with the link up, how long after the tap a saved tap
	// waits for central's Result before its first feedback, so that the
	// passholder sees one answer (the total, or central's refusal) rather
	// than "saved" and then a refusal. Without a Result by then, or
	// offline, the tap shows saved as it would have at once. 0: never wait.
	AwaitResult time.Duration
	// Linked reports whether the uplink can deliver now (a session with the
	// broker); nil: never, so no tap waits.
	Linked func() bool
	// Pages is how many pages the output needs for a screen (central's long
	// message split at a legible size); nil: one. Each page is held for Hold.
	Pages func(display.Screen) int
}

// Decision is the answer to one tap.
type Decision struct {
	Outcome string
	Screen  display.Screen // the screen shown first
	Chip    string
	ID      string
	Seq     int64
	// Result is central's status when its Result came before the first
	// feedback (within AwaitResult): Screen is then central's answer.
	Result string

	wait time.Duration // > 0: saved, its feedback waiting this long for central's Result
}

// Core is one kiosk's decision engine.
type Core struct {
	o    Opts
	ob   Outbox
	disp display.Display
	ind  display.Indicator
	log  *slog.Logger

	uplink  Uplink
	results chan protocol.Result
	calls   chan func()

	mu       sync.Mutex
	snap     snapshot
	waiters  map[string][]chan Decision
	idleScr  func() *display.Screen
	dispHlth func() error
	indHlth  func() error

	// Owned by the tap loop.
	event   Event
	last    lastTap
	current Decision // the tap screen up now, if onScr
	onScr   bool
	page    int // of current's screen, of pages
	pages   int
	// awaiting is a saved tap whose feedback waits for central's Result
	// until awaitUntil; answering is false after central let such a wait
	// run out, until its next Result: a central that is down costs one wait,
	// not one per tap.
	awaiting   *Decision
	awaitUntil time.Time
	answering  bool
	dispOK     bool // the display's health at the last housekeeping
	indOK      bool // the buzzer and LED's, likewise
}

type snapshot struct {
	eventID     string
	reader      reader.State
	readerErr   error
	clockSynced bool
	lastTapAt   time.Time
}

type lastTap struct {
	chip string
	at   time.Time
	d    Decision
}

// New returns a core. Call SetUplink before Run if there is one.
func New(o Opts, ob Outbox, disp display.Display, ind display.Indicator) *Core {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Hold <= 0 {
		o.Hold = 4 * time.Second
	}
	if o.TickEvery <= 0 {
		o.TickEvery = time.Second
	}
	if o.Lang == "" {
		o.Lang = "nl"
	}
	if disp == nil {
		disp = display.None{}
	}
	if ind == nil {
		ind = display.None{}
	}
	c := &Core{o: o, ob: ob, disp: disp, ind: ind, log: o.Logger,
		results: make(chan protocol.Result, 256), calls: make(chan func(), 16),
		waiters: map[string][]chan Decision{}, event: o.Event, dispOK: true, indOK: true, answering: true}
	c.snap.eventID = o.Event.ID
	if o.Host != nil {
		c.snap.clockSynced = o.Host.ClockSynced()
	}
	return c
}

// SetUplink connects the core to its forwarder.
func (c *Core) SetUplink(u Uplink) { c.uplink = u }

// SetIdleOverride makes f decide the idle screen when it returns non-nil
// (the provisioning screen before a kiosk is provisioned).
func (c *Core) SetIdleOverride(f func() *display.Screen) {
	c.mu.Lock()
	c.idleScr = f
	c.mu.Unlock()
}

// SetDisplayHealth gives the core a way to ask the display for its health.
func (c *Core) SetDisplayHealth(f func() error) {
	c.mu.Lock()
	c.dispHlth = f
	c.mu.Unlock()
}

// SetIndicatorHealth gives the core a way to ask the buzzer and LED for
// their health (reported apart from the display's: a kiosk without its
// buzzer still shows every answer).
func (c *Core) SetIndicatorHealth(f func() error) {
	c.mu.Lock()
	c.indHlth = f
	c.mu.Unlock()
}

// Run is the tap loop: it reads reader events, results and calls until ctx
// is done.
func (c *Core) Run(ctx context.Context, events <-chan reader.Event) error {
	hold := c.o.Clock.NewTimer(time.Hour)
	hold.Stop()
	wait := c.o.Clock.NewTimer(time.Hour)
	wait.Stop()
	tick := c.o.Clock.NewTimer(c.untilTick())
	defer tick.Stop()
	defer hold.Stop()
	defer wait.Stop()
	present := func(d Decision) {
		c.onScr, c.current, c.page, c.pages = true, d, 0, c.pagesOf(d.Screen)
		hold.Reset(c.o.Hold)
		c.deliver(d)
	}
	c.showIdle()
	for {
		select {
		case <-ctx.Done():
			if c.awaiting != nil { // the tap in hand is finished: it was saved
				present(c.settle(nil))
			}
			return ctx.Err()
		case ev := <-events:
			switch {
			case ev.Tap != nil:
				if c.awaiting != nil {
					if c.repeatsAwaited(*ev.Tap) {
						c.last.at = ev.Tap.At // the same tap: its answer is coming
						continue
					}
					present(c.settle(nil)) // the next passholder: no more waiting
				}
				d := c.decide(ctx, *ev.Tap)
				if d.wait > 0 {
					c.awaiting, c.awaitUntil = &d, c.o.Clock.Now().Add(d.wait)
					wait.Reset(d.wait)
					continue
				}
				present(d)
			case ev.Health != nil:
				c.health(*ev.Health)
			}
		case r := <-c.results:
			c.answering = true
			if c.awaiting != nil && c.awaiting.ID == r.ID {
				wait.Stop()
				present(c.settle(&r))
			} else if c.result(r) {
				c.page, c.pages = 0, c.pagesOf(c.current.Screen)
				hold.Reset(c.o.Hold)
			}
		case at := <-wait.C():
			// A fake clock's stopped timer may still deliver: only a fire at
			// or after the deadline ends the wait.
			if c.awaiting != nil && !at.Before(c.awaitUntil) {
				c.answering = false
				present(c.settle(nil))
			}
		case <-hold.C():
			if c.onScr && c.page+1 < c.pages {
				c.page++
				s := c.current.Screen
				s.Page = c.page
				c.disp.Show(s)
				hold.Reset(c.o.Hold)
				continue
			}
			c.onScr = false
			c.showIdle()
		case f := <-c.calls:
			f()
		case <-tick.C():
			tick.Reset(c.untilTick())
			c.housekeep()
			if c.o.OnTick != nil {
				c.o.OnTick()
			}
		}
	}
}

// untilTick is the time to the next tick: ticks fall on whole multiples of
// TickEvery of the clock, so that the cores of a fleet in one process (the
// simulator runs thousands) wake together, once, rather than each at its own
// moment; one core still ticks every TickEvery.
func (c *Core) untilTick() time.Duration {
	now := c.o.Clock.Now()
	return c.o.TickEvery - now.Sub(now.Truncate(c.o.TickEvery))
}

// repeatsAwaited reports whether tap is the awaited tap's card again within
// the debounce window.
func (c *Core) repeatsAwaited(tap reader.Tap) bool {
	return c.last.d.ID == c.awaiting.ID && c.last.chip == tap.Chip() && c.o.Debounce > 0 &&
		tap.At.Sub(c.last.at) < c.o.Debounce
}

// settle gives the awaited tap its first feedback: central's answer r, or
// saved when r is nil (no Result in time).
func (c *Core) settle(r *protocol.Result) Decision {
	d := *c.awaiting
	c.awaiting, d.wait = nil, 0
	if r != nil {
		d.Result, d.Screen = r.Status, c.answer(d.Screen, *r)
	}
	c.disp.Show(d.Screen)
	c.ind.Signal(signalForScreen(d.Screen.Kind))
	if c.last.d.ID == d.ID {
		c.last.d = d // a debounced re-tap shows the same answer
	}
	return d
}

// pagesOf is how many pages s takes on the output.
func (c *Core) pagesOf(s display.Screen) int {
	if s.Message == "" || c.o.Pages == nil {
		return 1
	}
	return max(1, c.o.Pages(s))
}

// decide runs the tap decision in the order the product requires.
func (c *Core) decide(ctx context.Context, tap reader.Tap) Decision {
	chip := tap.Chip()
	// 1. A UID of the wrong length, or a random ID, identifies nobody.
	if err := protocol.CheckChip(chip); err != nil {
		d := c.feedback(Decision{Outcome: OutcomeUnreadable, Chip: chip, Screen: c.screen(display.Unreadable)})
		c.log.Info("tap refused", "chip", protocol.MaskChip(chip), "outcome", d.Outcome, "why", err)
		return d
	}
	// 2. The same card again within the window is the same tap.
	if c.last.chip == chip && c.o.Debounce > 0 && tap.At.Sub(c.last.at) < c.o.Debounce {
		c.last.at = tap.At
		c.disp.Show(c.last.d.Screen)
		return c.last.d
	}
	d := c.judge(ctx, tap, chip)
	c.last = lastTap{chip: chip, at: tap.At, d: d}
	return d
}

func (c *Core) judge(ctx context.Context, tap reader.Tap, chip string) Decision {
	d := Decision{Chip: chip}
	ev := &c.event
	// 3. An event in force. Without a synchronised clock the kiosk cannot
	// judge the window: it queues and central, which dates the tap by its
	// own clock, decides.
	synced := c.o.Host == nil || c.o.Host.ClockSynced()
	if ev.ID == "" || synced && !ev.inForce(tap.At) {
		d.Outcome, d.Screen = OutcomeNoEvent, c.screen(display.NoEvent)
		return c.feedback(d)
	}
	// 4. The hot list.
	if ev.Blocked[chip] {
		d.Outcome, d.Screen = OutcomeBlocked, c.screen(display.Blocked)
		return c.feedback(d)
	}
	// 5. The local pre-filter of the constraint.
	bucket, err := protocol.PeriodBucket(ev.Period, tap.At, c.o.Location)
	if err != nil {
		bucket = ""
	}
	if bucket != "" {
		used, err := c.ob.Used(ctx, chip, ev.ID, bucket)
		if err != nil {
			c.log.Error("pre-filter read failed", "err", err)
		} else if used >= ev.Volume {
			d.Outcome, d.Screen = OutcomeAlreadySaved, c.screen(display.AlreadySaved)
			return c.feedback(d)
		}
	}
	// 6. Queue, durably; feedback only after the commit.
	var host Host = c.o.Host
	in := protocol.Checkin{DeviceID: c.o.DeviceID, ChipNumber: chip, EventID: ev.ID,
		CounterID: ev.CounterID, TappedAt: protocol.FormatTime(tap.At), ClockSynced: synced}
	if host != nil {
		in.BootID, in.UptimeMs = host.BootID(), host.Uptime().Milliseconds()
	}
	item, err := c.ob.Enqueue(ctx, queue.Entry{Chip: chip, EventID: ev.ID, Bucket: bucket,
		Build: func(id string, seq int64) ([]byte, error) {
			in.ID, in.Seq = id, seq
			return in.Encode(), nil
		}})
	switch {
	case errors.Is(err, queue.ErrFull):
		c.log.Warn("queue full: tap refused", "chip", protocol.MaskChip(chip))
		d.Outcome, d.Screen = OutcomeQueueFull, c.screen(display.QueueFull)
		return c.feedback(d)
	case err != nil:
		c.log.Error("tap not stored", "chip", protocol.MaskChip(chip), "err", err)
		d.Outcome, d.Screen = OutcomeStorageError, c.screen(display.StorageError)
		return c.feedback(d)
	}
	d.Outcome, d.ID, d.Seq = OutcomeSaved, item.ID, item.Seq
	d.Screen = c.screen(display.Saved)
	d.Screen.Points = ev.Points
	// Durable now. Online, central's answer is usually a few milliseconds
	// away: wait for it (the tap loop goes on) rather than show saved and
	// then perhaps a refusal. Offline nothing more happens before the
	// feedback than this check.
	// The wait ends AwaitResult after the tap, so that a slow disk does not
	// add to it: the passholder has an answer by then, whatever happens.
	if c.o.AwaitResult > 0 && c.answering && c.o.Linked != nil && c.o.Linked() {
		d.wait = min(c.o.AwaitResult, tap.At.Add(c.o.AwaitResult).Sub(c.o.Clock.Now()))
	}
	if d.wait <= 0 {
		c.feedback(d)
	}
	c.mu.Lock()
	c.snap.lastTapAt = tap.At
	c.mu.Unlock()
	if c.uplink != nil {
		c.uplink.Kick()
	}
	c.log.Info("tap saved", "chip", protocol.MaskChip(chip), "seq", item.Seq, "id", item.ID)
	return d
}

// screen starts a screen of kind with the kiosk's language and event.
func (c *Core) screen(k display.Kind) display.Screen {
	return display.Screen{Kind: k, Lang: c.o.Lang, EventTitle: c.event.Title}
}

// feedback shows d's screen and sounds its signal, and counts a refusal
// (a saved tap was counted with its checkin). A debounced re-tap does not
// come here: it is not a new decision.
func (c *Core) feedback(d Decision) Decision {
	c.disp.Show(d.Screen)
	c.ind.Signal(signalFor(d.Outcome))
	if d.Outcome != OutcomeSaved {
		c.ob.CountOutcome(d.Outcome)
	}
	return d
}

func signalFor(outcome string) display.Pattern {
	switch outcome {
	case OutcomeSaved:
		return display.SignalSaved
	case OutcomeAlreadySaved:
		return display.SignalAlreadySaved
	case OutcomeQueueFull, OutcomeStorageError:
		return display.SignalFault
	}
	return display.SignalRefused
}

// signalForScreen is the buzzer and LED pattern of what the screen says,
// whoever decided it: central's maximum-reached sounds like the kiosk's own
// already-saved.
func signalForScreen(k display.Kind) display.Pattern {
	switch k {
	case display.Saved:
		return display.SignalSaved
	case display.AlreadySaved:
		return display.SignalAlreadySaved
	case display.QueueFull, display.StorageError, display.Fault:
		return display.SignalFault
	}
	return display.SignalRefused
}

// answer is s (a saved tap's screen) turned into central's answer r.
func (c *Core) answer(s display.Screen, r protocol.Result) display.Screen {
	switch r.Status {
	case protocol.StatusSaved:
		s.Kind, s.Points, s.Total, s.HasTotal = display.Saved, r.NewPoints, r.TotalPoints, true
	case protocol.StatusMaximumReached:
		s.Kind = display.AlreadySaved
	case protocol.StatusCardBlocked:
		s.Kind = display.Blocked
	case protocol.StatusPassholderNotFound:
		s.Kind = display.NotRecognised
	case protocol.StatusEventNotFound:
		s.Kind = display.NoEvent
	default: // checkin-not-allowed, invalid-request, a status of a later contract
		s.Kind = display.NotAllowed
	}
	s.Message = r.EndUserMessage[c.o.Lang]
	if s.Message == "" {
		s.Message = r.EndUserMessage["nl"]
	}
	return s
}

// result applies central's Result to the tap screen still up, if it is the
// tap's. It reports whether the screen changed.
func (c *Core) result(r protocol.Result) bool {
	if !c.onScr || c.current.ID != r.ID {
		return false
	}
	s := c.answer(c.current.Screen, r)
	s.Page = 0
	c.current.Screen = s
	if c.last.d.ID == r.ID {
		c.last.d.Screen = s // a debounced re-tap shows what central said
	}
	c.disp.Show(s)
	if r.Status != protocol.StatusSaved {
		c.ind.Signal(signalForScreen(s.Kind))
	}
	return true
}

// OnResult hands central's Result to the tap loop (the forwarder calls it).
func (c *Core) OnResult(r protocol.Result) {
	select {
	case c.results <- r:
	default: // the loop is far behind; the screen update is only cosmetic
	}
}

func (c *Core) health(h reader.Health) {
	c.mu.Lock()
	changed := c.snap.reader != h.State
	c.snap.reader, c.snap.readerErr = h.State, h.Err
	c.mu.Unlock()
	if !changed {
		return
	}
	if h.State == reader.Fault {
		c.log.Error("reader fault", "err", h.Err)
		c.ind.Signal(display.SignalFault)
	} else {
		c.log.Info("reader ok again")
	}
	if !c.onScr {
		c.showIdle()
	}
	if c.uplink != nil {
		c.uplink.StatusChanged()
	}
}

// idle is the screen shown between taps.
func (c *Core) idle() display.Screen {
	c.mu.Lock()
	override, rd := c.idleScr, c.snap.reader
	c.mu.Unlock()
	if override != nil {
		if s := override(); s != nil {
			return *s
		}
	}
	if rd == reader.Fault {
		return c.screen(display.Fault)
	}
	if c.event.ID == "" {
		return c.screen(display.NoEvent)
	}
	s := c.screen(display.Idle)
	s.Code = c.event.CheckinCode
	return s
}

func (c *Core) showIdle() { c.disp.Show(c.idle()) }

// housekeep notices changes that matter to central: the clock's
// synchronisation and the display's health.
func (c *Core) housekeep() {
	c.mu.Lock()
	synced := c.snap.clockSynced
	if c.o.Host != nil {
		synced = c.o.Host.ClockSynced()
	}
	clockChanged := synced != c.snap.clockSynced
	c.snap.clockSynced = synced
	dh, ih := c.dispHlth, c.indHlth
	c.mu.Unlock()
	dispErr := healthOf(dh)
	dispChanged := (dispErr == nil) != c.dispOK
	c.dispOK = dispErr == nil
	indErr := healthOf(ih)
	indChanged := (indErr == nil) != c.indOK
	c.indOK = indErr == nil
	if clockChanged {
		c.log.Info("clock synchronisation changed", "synced", synced)
	}
	if dispChanged {
		c.log.Warn("display health changed", "ok", c.dispOK, "err", dispErr)
	}
	if indChanged {
		c.log.Warn("buzzer/LED health changed", "ok", c.indOK, "err", indErr)
	}
	if (clockChanged || dispChanged || indChanged) && c.uplink != nil {
		c.uplink.StatusChanged()
	}
}

// SetEvent puts ev in force (a verified remote config, or a local change).
func (c *Core) SetEvent(ctx context.Context, ev Event) error {
	return c.call(ctx, func() {
		c.event = ev
		c.mu.Lock()
		changed := c.snap.eventID != ev.ID
		c.snap.eventID = ev.ID
		c.mu.Unlock()
		if !c.onScr {
			c.showIdle()
		}
		if changed && c.uplink != nil {
			c.uplink.StatusChanged()
		}
	})
}

// CurrentEvent returns the event in force.
func (c *Core) CurrentEvent(ctx context.Context) (Event, error) {
	var ev Event
	err := c.call(ctx, func() { ev = c.event })
	return ev, err
}

// Identify blinks and beeps so a technician finds this box.
func (c *Core) Identify() { c.ind.Signal(display.SignalIdentify) }

// RefreshIdle redraws the idle screen if no tap screen is up.
func (c *Core) RefreshIdle(ctx context.Context) error {
	return c.call(ctx, func() {
		if !c.onScr {
			c.showIdle()
		}
	})
}

// call runs f on the tap loop and waits for it.
func (c *Core) call(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case c.calls <- func() { f(); close(done) }:
	case <-ctx.Done():
		return fmt.Errorf("device: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("device: %w", ctx.Err())
	}
}

// Expect registers interest in the next decision for chip (the control
// socket waits on it after putting a card on the reader). Call cancel when
// no longer waiting.
func (c *Core) Expect(chip string) (<-chan Decision, func()) {
	ch := make(chan Decision, 1)
	c.mu.Lock()
	c.waiters[chip] = append(c.waiters[chip], ch)
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ws := c.waiters[chip]
		for i, w := range ws {
			if w == ch {
				c.waiters[chip] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(c.waiters[chip]) == 0 {
			delete(c.waiters, chip)
		}
	}
}

func (c *Core) deliver(d Decision) {
	c.mu.Lock()
	ws := c.waiters[d.Chip]
	delete(c.waiters, d.Chip)
	c.mu.Unlock()
	for _, w := range ws {
		w <- d // buffered, one each
	}
}

func healthOf(f func() error) error {
	if f == nil {
		return nil
	}
	return f()
}

func okOrFault(err error) string {
	if err != nil {
		return "fault"
	}
	return "ok"
}

// Snapshot is the state other goroutines may read.
type Snapshot struct {
	EventID     string
	Reader      reader.State
	ReaderErr   error
	Display     string // "ok" | "fault"
	Indicator   string // "ok" | "fault" (buzzer and LED)
	ClockSynced bool
	LastTapAt   time.Time
}

// Snapshot returns the core's current state.
func (c *Core) Snapshot() Snapshot {
	c.mu.Lock()
	s := c.snap
	dh, ih := c.dispHlth, c.indHlth
	c.mu.Unlock()
	return Snapshot{EventID: s.eventID, Reader: s.reader, ReaderErr: s.readerErr, Display: okOrFault(healthOf(dh)),
		Indicator: okOrFault(healthOf(ih)), ClockSynced: s.clockSynced, LastTapAt: s.lastTapAt}
}

// Status is the contract's Status as far as the core knows it; the
// forwarder adds the queue figures and the time.
func (c *Core) Status() protocol.Status {
	s := c.Snapshot()
	st := protocol.Status{Online: true, DeviceID: c.o.DeviceID, Version: c.o.Version, EventID: s.EventID,
		ClockSynced: s.ClockSynced, Reader: s.Reader.String(), Display: s.Display, Indicator: s.Indicator}
	if !s.LastTapAt.IsZero() {
		st.LastTapAt = protocol.FormatTime(s.LastTapAt)
	}
	return st
}
