// Command vm drives make vm-test (test/vm/run.sh builds the image and the
// packages and calls it): kioskd's Debian package on a real Debian
// bookworm under real systemd, in qemu-system-x86_64 (or -aarch64) on a
// disk with a volatile write cache (nbdkit's cache filter). In one run, in
// order:
//
//  1. systemd for real: install, start (READY), STATUS=, the exposure score
//     equal to the offline one, the hardening in force, a wedged tap loop
//     killed by the watchdog and restarted;
//  2. power cuts at random moments of tap streams; after each boot every
//     tap answered saved is in the queue or central's ledger, no seq names
//     two checkins, PRAGMA integrity_check is ok; then a control run on a
//     disk that lies about flushes, which must lose taps;
//  3. a clock that lies (RTC at 1970, no NTP), then NTP from the host;
//  4. an upgrade under load with the broker down, then a purge.
//
// Its last line: "vm-test: N cuts, N taps confirmed, 0 lost; control lost M".
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const device = "vm-kiosk-01"

type harness struct {
	work, kernel, initrd, disk string
	arch                       string // the guest's Debian architecture: amd64 or arm64
	unit                       string
	oldVer, newVer             string
	bootTimeout                time.Duration
	rng                        *rand.Rand
	central                    *central
	cards                      *cards

	failures int
	all      []confirmed // every tap answered saved, in order
	lost     int         // confirmed taps (outside the control) found in neither queue nor ledger
	boots    []time.Duration

	mu  sync.Mutex
	cur *machine // the machine running, killed on SIGINT or SIGTERM
	ntp *daemon
}

func main() {
	h := &harness{}
	var cuts int
	var seed uint64
	flag.StringVar(&h.work, "work", "", "work `dir`ectory")
	flag.StringVar(&h.arch, "arch", "amd64", "the guest's architecture: amd64 (qemu-system-x86_64, q35) or arm64 (qemu-system-aarch64, virt)")
	flag.StringVar(&h.kernel, "kernel", "", "the guest's kernel")
	flag.StringVar(&h.initrd, "initrd", "", "the guest's initramfs")
	flag.StringVar(&h.disk, "disk", "", "the guest's raw disk image")
	ingest := flag.String("ingest", "", "kiosk-ingest binary (runs on the host)")
	flag.StringVar(&h.unit, "unit", "systemd/kioskd.service", "the unit in the tree (its offline exposure score)")
	flag.StringVar(&h.oldVer, "old-version", "", "version of /root/vm/kioskd_VERSION_ARCH.deb installed first")
	flag.StringVar(&h.newVer, "new-version", "", "version of the upgrade")
	flag.IntVar(&cuts, "cuts", 10, "power cuts")
	flag.Uint64Var(&seed, "seed", 0, "random seed of the cut moments (0: from the time)")
	started := flag.Int64("started", 0, "unix `time` make vm-test started (for the duration it prints)")
	flag.DurationVar(&h.bootTimeout, "boot-timeout", 10*time.Minute, "longest boot (software emulation on a loaded machine)")
	flag.Parse()
	if h.work == "" || h.kernel == "" || h.disk == "" || *ingest == "" || h.oldVer == "" || h.newVer == "" {
		fmt.Fprintln(os.Stderr, "vm: -work, -kernel, -initrd, -disk, -ingest, -old-version and -new-version are needed")
		os.Exit(2)
	}
	if _, ok := qemuFor[h.arch]; !ok {
		fmt.Fprintf(os.Stderr, "vm: -arch %q: amd64 or arm64\n", h.arch)
		os.Exit(2)
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	h.logf("seed %d (-seed to repeat the cut moments)", seed)
	h.rng = rand.New(rand.NewPCG(seed, seed>>1|1))
	h.cards = &cards{base: h.rng.Uint64N(1 << 40)}
	c, err := newCentral(h.work, *ingest)
	if err != nil {
		h.fatal(err)
	}
	h.central = c
	defer c.down()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		h.mu.Lock()
		if h.cur != nil {
			h.cur.kill()
		}
		if h.ntp != nil {
			h.ntp.stop()
		}
		h.mu.Unlock()
		c.down()
		fmt.Printf("vm: stopped by %v\n", s)
		os.Exit(1)
	}()
	start := time.Now()
	controlLost, err := h.run(cuts)
	if err != nil {
		h.failf("%v", err)
	}
	confirmedN := h.confirmedOutsideControl()
	h.logf("boots: %s", durations(h.boots))
	h.logf("driver ran %s", time.Since(start).Round(time.Second))
	if *started > 0 {
		fmt.Printf("vm-test: took %s in all (image, packages, boots, checks)\n", time.Since(time.Unix(*started, 0)).Round(time.Second))
	}
	if h.failures > 0 {
		h.logf("%d check(s) failed", h.failures)
	}
	fmt.Printf("vm-test: %d cuts, %d taps confirmed, %d lost; control lost %d\n", cuts, confirmedN, h.lost, controlLost)
	if h.failures > 0 || h.lost > 0 || controlLost == 0 {
		os.Exit(1)
	}
}

func (h *harness) logf(format string, a ...any) {
	fmt.Printf("%s vm: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func (h *harness) ok(format string, a ...any) { h.logf("ok: "+format, a...) }

func (h *harness) failf(format string, a ...any) {
	h.failures++
	h.logf("FAIL: "+format, a...)
}

func (h *harness) fatal(err error) {
	fmt.Printf("vm: FAIL: %v\n", err)
	os.Exit(1)
}

func (h *harness) boot(name string, bo bootOpts) (*machine, error) {
	h.logf("boot %s (disk cache=%s, rtc %s)", name, bo.cache, bo.rtc)
	m, err := h.bootMachine(name, bo)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.cur = m
	h.mu.Unlock()
	h.boots = append(h.boots, m.booted)
	h.logf("%s: agent up after %s", name, m.booted.Round(100*time.Millisecond))
	return m, nil
}

// run is the whole suite; it returns the control run's lost taps.
func (h *harness) run(cuts int) (int, error) {
	ctx := context.Background()
	if err := h.central.up(); err != nil {
		return 0, err
	}
	m, err := h.boot("boot-01", bootOpts{cache: honest, rtc: "utc"})
	if err != nil {
		return 0, err
	}
	defer func() {
		if m != nil {
			m.kill()
		}
	}()
	if err := h.systemdForReal(ctx, m); err != nil {
		return 0, err
	}

	// 2. Power cuts. Odd cuts with central up (checkins flow to the ledger
	// and are deleted from the queue during the stream), even ones with
	// broker and ingest down (everything stays queued).
	for i := 1; i <= cuts; i++ {
		phase := fmt.Sprintf("cut-%02d", i)
		if i%2 == 1 {
			if err := h.central.up(); err != nil {
				return 0, err
			}
		} else {
			h.central.down()
		}
		n := h.cutDuringStream(m, phase)
		h.logf("%s: %d taps answered saved before the cut", phase, n)
		if m, err = h.boot(fmt.Sprintf("boot-%02d", i+1), bootOpts{cache: honest, rtc: "utc"}); err != nil {
			return 0, err
		}
		// Checked as the cut left it: after an even cut (central down)
		// every confirmed tap of it must be in the queue itself.
		if _, err := h.checkAfterCut(ctx, m, phase); err != nil {
			return 0, err
		}
		if err := h.central.up(); err != nil {
			return 0, err
		}
	}

	// The control: the same cut, booted on a disk whose flushes are
	// acknowledged and never done. Central down, so nothing leaves the
	// kiosk: its taps are on its disk or nowhere.
	m.kill()
	h.central.down()
	if m, err = h.boot("boot-control", bootOpts{cache: lying, rtc: "utc"}); err != nil {
		return 0, err
	}
	if _, err := m.waitActive(3 * time.Minute); err != nil {
		return 0, err
	}
	n := h.cutDuringStream(m, controlPhase)
	h.logf("control: %d taps answered saved before the cut (disk cache=unsafe)", n)

	// 3. The clock that lies, on the next boot: RTC at 1970, no NTP.
	if m, err = h.boot("boot-clock", bootOpts{cache: honest, rtc: "1970-01-01"}); err != nil {
		return 0, err
	}
	if err := h.central.up(); err != nil {
		return 0, err
	}
	controlLost, err := h.checkAfterCut(ctx, m, controlPhase)
	if err != nil {
		return 0, err
	}
	if controlLost == 0 {
		h.failf("control: the lying disk lost no taps: the power-cut test could not fail")
	} else {
		h.ok("control: the lying disk lost %d of %d taps answered saved", controlLost, n)
	}
	if err := h.clockThatLies(ctx, m); err != nil {
		return controlLost, err
	}

	// 4. Upgrade under load, then purge.
	if err := h.upgradeUnderLoad(ctx, m); err != nil {
		return controlLost, err
	}
	return controlLost, h.purge(m)
}

// cutDuringStream streams taps and cuts the power at a random moment, 0.5 s
// to 6 s after the first saved answer. It returns the taps answered saved.
func (h *harness) cutDuringStream(m *machine, phase string) int {
	stop := make(chan struct{})
	s := startStream(m, h.cards, phase, stop, false)
	select {
	case <-s.firstSaved:
	case <-s.done:
	case <-time.After(2 * time.Minute):
	}
	d := time.Duration(500+h.rng.IntN(5500)) * time.Millisecond
	time.Sleep(d)
	m.cut()
	close(stop)
	<-s.done
	got := s.confirmed()
	h.all = append(h.all, got...)
	if len(got) == 0 {
		h.failf("%s: no tap answered saved before the cut: %v", phase, s.other)
	}
	h.logf("%s: power cut %s into the stream", phase, d)
	return len(got)
}

// queueRows reads the guest's queue as kioskd's user: seq by id, and
// PRAGMA integrity_check.
func queueRows(m *machine) (map[string]int64, string, error) {
	out, err := m.sh(`runuser -u kioskd -- sqlite3 -batch -noheader /var/lib/kioskd/queue.db "PRAGMA integrity_check; SELECT 'row', seq, id FROM checkin;"`)
	if err != nil {
		return nil, "", err
	}
	rows := map[string]int64{}
	var integ []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "|")
		if len(f) == 3 && f[0] == "row" {
			var seq int64
			fmt.Sscan(f[1], &seq)
			rows[f[2]] = seq
			continue
		}
		integ = append(integ, l)
	}
	return rows, strings.Join(integ, " "), nil
}

// checkAfterCut: after the boot that follows phase's cut, every tap
// answered saved (before any cut) is in the queue or the ledger, no seq
// names two checkins, and the queue passes integrity_check. It returns how
// many of phase's taps are lost (the control's count; a loss outside the
// control always fails).
func (h *harness) checkAfterCut(ctx context.Context, m *machine, phase string) (int, error) {
	st, err := m.waitActive(3 * time.Minute)
	if err != nil {
		return 0, err
	}
	if st.Storage != "ok" {
		h.failf("%s: storage %q after the boot", phase, st.Storage)
	}
	q, integ, err := queueRows(m)
	if err != nil {
		return 0, err
	}
	// The ledger after the queue: a checkin leaves the queue only once the
	// ledger has it, so none falls between the two reads.
	l, err := h.central.ledgerRows(ctx, device)
	if err != nil {
		return 0, err
	}
	if integ == "ok" {
		h.ok("%s: PRAGMA integrity_check ok", phase)
	} else {
		h.failf("%s: PRAGMA integrity_check: %s", phase, integ)
	}
	lostHere, lostPhase := 0, 0
	phaseQ, phaseL := 0, 0
	for _, t := range h.all {
		_, inQ := q[t.ID]
		_, inL := l[t.ID]
		if t.Phase == phase {
			switch {
			case inQ:
				phaseQ++
			case inL:
				phaseL++
			}
		}
		if inQ || inL {
			continue
		}
		if t.Phase == phase {
			lostPhase++
		}
		if !t.inControl() {
			lostHere++
		}
	}
	if lostHere > 0 {
		h.lost = max(h.lost, lostHere)
		h.failf("%s: %d taps answered saved are in neither the queue nor the ledger", phase, lostHere)
	}
	// seq: one checkin per seq, among the confirmed taps (outside the
	// control, whose lost seqs the kiosk cannot know it gave out), the
	// queue and the ledger.
	bySeq := map[int64]string{}
	dup := 0
	note := func(seq int64, id string) {
		if seq <= 0 {
			return
		}
		if prev, ok := bySeq[seq]; ok && prev != id {
			dup++
			if dup <= 3 {
				h.logf("%s: seq %d names %s and %s", phase, seq, prev, id)
			}
			return
		}
		bySeq[seq] = id
	}
	for _, t := range h.all {
		if !t.inControl() {
			note(t.Seq, t.ID)
		}
	}
	for id, seq := range q {
		note(seq, id)
	}
	for id, r := range l {
		note(r.Seq, id)
	}
	if dup > 0 {
		h.failf("%s: %d seq values name two checkins", phase, dup)
	}
	if lostHere == 0 && dup == 0 {
		h.ok("%s: all %d confirmed taps in the queue (%d rows) or the ledger (%d); this cut's: %d queued, %d in the ledger; no seq reused; kioskd at seq %d",
			phase, h.confirmedOutsideControl(), len(q), len(l), phaseQ, phaseL, st.Seq)
	}
	return lostPhase, nil
}

func (h *harness) confirmedOutsideControl() int {
	n := 0
	for _, t := range h.all {
		if !t.inControl() {
			n++
		}
	}
	return n
}

// tapSaved makes one tap and wants it saved.
func (h *harness) tapSaved(m *machine, phase string) (confirmed, error) {
	c, err := m.control()
	if err != nil {
		return confirmed{}, err
	}
	defer c.Close()
	uid := h.cards.next()
	r, err := c.tap(uid)
	if err != nil {
		return confirmed{}, err
	}
	if !r.OK || r.Outcome != "saved" {
		return confirmed{}, fmt.Errorf("vm: tap %s: %+v", uid, r)
	}
	t := confirmed{ID: r.ID, Seq: r.Seq, UID: uid, Phase: phase}
	h.all = append(h.all, t)
	return t, nil
}

// waitLedger waits until the ledger has id; it returns the row.
func (h *harness) waitLedger(ctx context.Context, id string, d time.Duration) (ledgerRow, error) {
	var row ledgerRow
	err := waitFor(ctx, d, func() (bool, error) {
		l, err := h.central.ledgerRows(ctx, device)
		if err != nil {
			return false, err
		}
		r, ok := l[id]
		row = r
		return ok, nil
	})
	return row, err
}

var exposureRE = regexp.MustCompile(`Overall exposure level for kioskd\.service: ([0-9.]+)`)

// offlineExposure is the tree unit's score as packaging/check.sh computes it.
func (h *harness) offlineExposure() (string, error) {
	out, _ := exec.Command("systemd-analyze", "security", "--offline=yes", h.unit).CombinedOutput()
	mm := exposureRE.FindSubmatch(out)
	if mm == nil {
		return "", fmt.Errorf("vm: systemd-analyze security --offline=yes %s: %s", h.unit, out)
	}
	return string(mm[1]), nil
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return fmt.Sprintf("%d, median %s, longest %s, mean %s", len(s), s[len(s)/2].Round(100*time.Millisecond),
		s[len(s)-1].Round(100*time.Millisecond), (sum / time.Duration(len(s))).Round(100*time.Millisecond))
}
