// Command kiosk-bench measures the kiosk as a whole and prints a table:
// tap → durable → feedback through the control socket with no central
// answering, beside a bare durable SQLite insert; tap → central's answer
// with kiosk-ingest answering; the drain of a 10 000-checkin backlog to
// Mosquitto with Results beside a raw paho request→reply through the same
// broker (the same window, the same fake central, interleaved rounds);
// kioskd's resident memory idle and while draining; and start to ready.
// It runs the real binaries from bin/ (make bench builds them) against a
// Mosquitto it starts on a free port. Its state (queues,
// ledger, logs) is in a temporary directory, removed at the end: by default
// below $TMPDIR or else /var/tmp, which is on disk, as a kiosk's queue is;
// -tmp names another.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd/fwdbench"
)

func main() {
	taps := flag.Int("taps", 1000, "taps through the control socket in each of the two tap measures (and bare inserts)")
	backlog := flag.Int("backlog", 10000, "checkins in the drain backlog")
	bin := flag.String("bin", "bin", "directory with kioskd and kiosk-ingest")
	tmp := flag.String("tmp", "", "make the state directory below this `directory` (removed at the end); default $TMPDIR, else /var/tmp")
	flag.Parse()
	b := &bench{bin: *bin}
	// Interrupted, the bench still stops its programs and removes its state.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "kiosk-bench: interrupted")
		b.cleanup()
		os.Exit(130)
	}()
	code := 0
	err := b.Run(func() error {
		if err := b.makeDir(*tmp); err != nil {
			return err
		}
		return b.run(*taps, *backlog)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiosk-bench:", err)
		code = 1
	}
	b.cleanup()
	os.Exit(code)
}

// bench runs the measurements; its Standalone starts the broker.
type bench struct {
	testbroker.Standalone
	bin  string
	mu   sync.Mutex // dir, between the run and an interrupt
	dir  string
	rows [][4]string
}

func (b *bench) cleanup() {
	b.Close()
	if d := b.stateDir(); d != "" {
		os.RemoveAll(d)
	}
}

func (b *bench) stateDir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dir
}

// stateParent is where the state directory is made when -tmp is not given:
// $TMPDIR, else /var/tmp (on disk on Debian, where /tmp may be a tmpfs whose
// fsyncs cost nothing, unlike a kiosk's SD card), else the system's default.
func stateParent() string {
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() {
		return "/var/tmp"
	}
	return os.TempDir()
}

// makeDir makes the bench's state directory below parent ("" for
// stateParent); cleanup removes it.
func (b *bench) makeDir(parent string) error {
	if parent == "" {
		parent = stateParent()
	}
	d, err := os.MkdirTemp(parent, "kiosk-bench-")
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if d, err = filepath.Abs(d); err != nil {
		os.RemoveAll(d)
		return fmt.Errorf("state directory: %w", err)
	}
	b.mu.Lock()
	b.dir, b.Dir = d, d
	b.mu.Unlock()
	if onTmpfs(d) {
		fmt.Fprintf(os.Stderr, "kiosk-bench: %s is a tmpfs: durable-write figures will flatter (-tmp names a directory on disk)\n", d)
	}
	return nil
}

func (b *bench) row(what, figure, yardstick, verdict string) {
	b.rows = append(b.rows, [4]string{what, figure, yardstick, verdict})
	fmt.Fprintf(os.Stderr, "  %s: %s\n", what, figure)
}

func (b *bench) run(nTaps, nBacklog int) error {
	ctx := context.Background()
	var err error
	broker := testbroker.Start(b)
	fmt.Fprintf(os.Stderr, "kiosk-bench: %s broker at %s, state in %s\n", broker.Kind, broker.URL(), b.dir)

	// (a) tap latency beside a bare durable insert, the two interleaved so
	// that both meet the same disk at the same moments.
	bi, err := queue.OpenBareInsert(ctx, b.TempDir())
	if err != nil {
		return err
	}
	defer bi.Close()
	enq, err := queue.MeasureEnqueue(ctx, b.TempDir(), nTaps)
	if err != nil {
		return err
	}
	k := b.newKiosk(broker.URL())
	// Central runs on this machine but on a kiosk it is elsewhere: its ledger
	// must not share the kiosk's disk flushes, so it commits without fsync.
	startIngest := func() *exec.Cmd {
		return b.start("kiosk-ingest", "-broker", broker.URL(), "-db", filepath.Join(b.dir, "ledger.db"), "-enroll-unknown",
			"-synchronous", "NORMAL")
	}
	// First with no central answering: the tap is durable, then its
	// feedback, which is what the bare insert is the yardstick of.
	k.start()
	k.waitLink(10 * time.Second)
	tp, bare, _, err := b.tapSeries(ctx, k, bi, "04BE", nTaps)
	if err != nil {
		return err
	}
	b.row("enqueue in process (Used+Enqueue)", enq.String(), "", "")
	b.row("bare durable SQLite insert (interleaved with the taps)", bare.String(), "", "")
	b.row("tap → durable → feedback, control socket, p50", tp.P50.String(), "bare p50 "+bare.P50.String(), "")
	b.row("tap → durable → feedback, control socket, p99", tp.P99.String(), "bare p99 "+bare.P99.String(),
		verdict(float64(tp.P99)/float64(bare.P99), 2, "≤ 2× bare"))
	// Then online, central answering: the passholder's answer is central's
	// Result, which the tap waits for (tap.await_result), so this is the
	// tap's whole round trip through the broker and the ingest. The broker
	// dropped the checkins published while nothing subscribed; a running
	// kiosk would publish them again after mqtt.retry_after (30 s), a
	// restarted one does at once. Their Results tell it central answers.
	ing := startIngest()
	k.stop()
	k.start()
	k.waitLink(10 * time.Second)
	k.waitPending(0, 60*time.Second)
	online, _, answered, err := b.tapSeries(ctx, k, nil, "04BD", nTaps)
	if err != nil {
		return err
	}
	b.row("tap → central's answer, online, p50", online.P50.String(), fmt.Sprintf("%d of %d answered by central", answered, nTaps), "")
	v := verdict(float64(online.P99)/float64(time.Millisecond), 100, "≤ 100 ms")
	if answered < nTaps { // the others did not wait: not this figure
		v = fmt.Sprintf("≤ 100 ms (MISSED: %d of %d taps without central's answer)", nTaps-answered, nTaps)
	}
	b.row("tap → central's answer, online, p99", online.P99.String(), "", v)
	k.waitPending(0, 60*time.Second)

	// (c) resident memory idle.
	time.Sleep(2 * time.Second)
	idle := rssKB(k.p.Process.Pid)
	b.row("kioskd RSS idle", fmt.Sprintf("%.1f MB", float64(idle)/1024), "", verdict(float64(idle)/1024, 30, "≤ 30 MB"))

	// (d) start to ready, five times.
	var starts []time.Duration
	for range 5 {
		k.stop()
		starts = append(starts, k.start())
	}
	slices.Sort(starts)
	b.row("start to ready (median of 5)", starts[2].Round(100*time.Microsecond).String(),
		"max "+starts[4].Round(100*time.Microsecond).String(), verdict(float64(starts[2].Milliseconds()), 200, "≤ 200 ms"))

	// (b) drain a backlog with Results, beside raw request→reply.
	k.stop()
	if err := b.fill(k, nBacklog); err != nil {
		return err
	}
	// The yardstick of a drain is a raw paho request→reply through the
	// same broker, the kiosk's window unanswered at most: a drain needs an
	// answer per checkin, which a one-way publish rate does not wait for.
	// Both move from run to run with the machine, so they are measured in
	// interleaved rounds and compared round by round.
	window := provisioning.Default().MQTT.Window
	var raws, drains, ratios []float64
	for r := range drainRounds {
		var raw, fwd fwdbench.Result
		var err error
		for i := range 2 { // the order alternates between rounds
			if (r+i)%2 == 0 {
				raw, err = fwdbench.RawRequestReply(ctx, broker.URL(), nBacklog, window)
			} else {
				fwd, _, err = fwdbench.Drain(ctx, broker.URL(), b.TempDir(), nBacklog, window)
			}
			if err != nil {
				return err
			}
		}
		raws, drains = append(raws, raw.PerSec()), append(drains, fwd.PerSec())
		ratios = append(ratios, fwd.PerSec()/raw.PerSec())
	}
	t0 := time.Now()
	k.start()
	var peak int64
	for {
		if kb := rssKB(k.p.Process.Pid); kb > peak {
			peak = kb
		}
		if p, err := k.pending(); err == nil && p == 0 {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			return fmt.Errorf("drain did not finish in 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(t0)
	rate := float64(nBacklog) / el.Seconds()
	rawMid := median(raws)
	b.row(fmt.Sprintf("raw paho request→reply of %d (window %d, fake central), median of %d", nBacklog, window, drainRounds),
		fmt.Sprintf("%.0f/s", rawMid), "rounds "+spread(raws, "%.0f"), "")
	b.row(fmt.Sprintf("drain of %d, forwarder + fake central, median of %d", nBacklog, drainRounds), fmt.Sprintf("%.0f/s", median(drains)),
		fmt.Sprintf("%.2f× raw (rounds %s)", median(ratios), spread(ratios, "%.2f")), verdict(median(ratios), 0.8, "≥ 0.8× raw"))
	b.row("drain, kioskd + kiosk-ingest (from exec)", fmt.Sprintf("%d in %v = %.0f/s", nBacklog, el.Round(time.Millisecond), rate),
		fmt.Sprintf("%.2f× raw request→reply", rate/rawMid), verdict(rate, 3000, "≥ 3000/s"))
	b.row("kioskd RSS peak while draining", fmt.Sprintf("%.1f MB", float64(peak)/1024), "", verdict(float64(peak)/1024, 40, "≤ 40 MB"))
	k.stop()
	ing.Process.Signal(syscall.SIGTERM)
	ing.Wait()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tfigure\tbeside\ttarget")
	fmt.Fprintln(tw, "-------\t------\t------\t------")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3])
	}
	return tw.Flush()
}

// drainRounds is how many times the drain and its yardstick are measured.
const drainRounds = 3

// median of v (sorted in place).
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

// spread prints v's smallest and largest values in format f.
func spread(v []float64, f string) string {
	return fmt.Sprintf(f+" – "+f, slices.Min(v), slices.Max(v))
}

// tapSeries times n taps through one connection to k's control socket, as
// a front end driving the socket would hold it (the figure is the tap, not
// connection set-up), after one tap that is not timed: with no central
// answering, that one waits tap.await_result and the kiosk then knows
// central is not answering.
func (b *bench) tapSeries(ctx context.Context, k *kioskProc, bi *queue.BareInsert, prefix string, n int) (tap, bare queue.Latency, answered int, err error) {
	conn, err := net.Dial("unix", k.sock)
	if err != nil {
		return tap, bare, 0, err
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if _, _, _, err := b.taps(ctx, conn, rd, nil, prefix, n, 1); err != nil { // the card after the series'
		return tap, bare, 0, err
	}
	return b.taps(ctx, conn, rd, bi, prefix, 0, n)
}

// taps sends n taps of new cards (chip numbers prefix and a counter from
// first) through the control socket and times each from request to reply;
// with bi, a bare durable insert before each, timed too. answered counts the
// replies that carry central's Result.
func (b *bench) taps(ctx context.Context, conn net.Conn, rd *bufio.Reader, bi *queue.BareInsert, prefix string, first, n int) (tap, bare queue.Latency, answered int, err error) {
	lat := make([]time.Duration, 0, n)
	var bareLat []time.Duration
	for i := first; i < first+n; i++ {
		if bi != nil {
			d, err := bi.Insert(ctx)
			if err != nil {
				return tap, bare, 0, err
			}
			bareLat = append(bareLat, d)
		}
		req := fmt.Sprintf(`{"op":"tap","chipNumber":"%s%010X"}`+"\n", prefix, i)
		t0 := time.Now()
		_, err := io.WriteString(conn, req)
		var line string
		if err == nil {
			line, err = rd.ReadString('\n')
		}
		d := time.Since(t0)
		if err != nil || !strings.Contains(line, `"outcome":"saved"`) {
			return tap, bare, 0, fmt.Errorf("tap %d: %s %v", i, line, err)
		}
		if strings.Contains(line, `"result":`) {
			answered++
		}
		lat = append(lat, d)
	}
	return queue.Summarise(lat), queue.Summarise(bareLat), answered, nil
}

func verdict(v, limit float64, target string) string {
	ok := v <= limit
	if strings.HasPrefix(target, "≥") {
		ok = v >= limit
	}
	mark := "met"
	if !ok {
		mark = "MISSED"
	}
	return fmt.Sprintf("%s (%s, %.2f)", target, mark, v)
}

// kioskProc is kioskd under measurement.
type kioskProc struct {
	b      *bench
	conf   string
	sock   string
	state  string
	device string
	p      *exec.Cmd
}

func (b *bench) newKiosk(broker string) *kioskProc {
	k := &kioskProc{b: b, conf: filepath.Join(b.dir, "kioskd.toml"), sock: filepath.Join(b.dir, "control.sock"),
		state: filepath.Join(b.dir, "kiosk"), device: "kiosk-bench-01"}
	conf := fmt.Sprintf(`device_id = %q
state_dir = %q
[event]
id = "evt-bench"
period = "DAY"
[tap]
debounce = "0s"
[control]
socket = %q
[mqtt]
broker = %q
allow_insecure = true
[log]
level = "warn"
`, k.device, k.state, k.sock, broker)
	if err := os.WriteFile(k.conf, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	return k
}

func (b *bench) start(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(b.bin, name), args...)
	log, err := os.Create(filepath.Join(b.dir, name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v (run make build first)", name, err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	return cmd
}

// start runs kioskd and returns the time from exec to its first answer.
func (k *kioskProc) start() time.Duration {
	t0 := time.Now()
	k.p = k.b.start("kioskd", "-config", k.conf)
	for {
		if _, err := k.pending(); err == nil {
			return time.Since(t0)
		}
		if time.Since(t0) > 10*time.Second {
			k.b.Fatal("kioskd did not answer within 10s")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (k *kioskProc) stop() {
	k.p.Process.Signal(syscall.SIGTERM)
	k.p.Wait()
}

func (k *kioskProc) pending() (int, error) {
	st, err := k.status()
	return st.Pending, err
}

type kioskStatus struct {
	Pending int    `json:"pending"`
	MQTT    string `json:"mqtt"`
}

func (k *kioskProc) status() (kioskStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var s kioskStatus
	line, err := control.Call(ctx, k.sock, control.Request{Op: "status"})
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(line, &s)
	return s, err
}

// waitLink waits until kioskd's link to the broker is up: before that a
// tap is offline and does not wait for central.
func (k *kioskProc) waitLink(timeout time.Duration) {
	k.waitStatus("kioskd's link to the broker to come up", timeout, func(s kioskStatus) bool { return s.MQTT == "connected" })
}

func (k *kioskProc) waitPending(n int, timeout time.Duration) {
	k.waitStatus(fmt.Sprintf("pending to reach %d", n), timeout, func(s kioskStatus) bool { return s.Pending == n })
}

// waitStatus polls kioskd's status until ok, or fails the bench after
// timeout.
func (k *kioskProc) waitStatus(what string, timeout time.Duration, ok func(kioskStatus) bool) {
	t0 := time.Now()
	for {
		if st, err := k.status(); err == nil && ok(st) {
			return
		}
		if time.Since(t0) > timeout {
			k.b.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fill queues n checkins in the stopped kiosk's outbox, as its core would.
func (b *bench) fill(k *kioskProc, n int) error {
	ob, err := queue.Open(filepath.Join(k.state, "queue.db"), queue.Opts{MinFreeBytes: -1})
	if err != nil {
		return err
	}
	defer ob.Close()
	now := time.Now()
	for i := range n {
		chip := fmt.Sprintf("04BF%010X", i)
		_, err := ob.Enqueue(context.Background(), queue.Entry{Chip: chip, EventID: "evt-bench", Bucket: "bench",
			Build: func(id string, seq int64) ([]byte, error) {
				return protocol.Checkin{ID: id, DeviceID: k.device, Seq: seq, ChipNumber: chip, EventID: "evt-bench",
					TappedAt: protocol.FormatTime(now), ClockSynced: true, BootID: "bench", UptimeMs: 1}.Encode(), nil
			}})
		if err != nil {
			return err
		}
	}
	return nil
}

// rssKB reads a process's resident set size from /proc.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// onTmpfs reports whether dir is on a tmpfs (RAM: fsync is free).
func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == 0x01021994 // TMPFS_MAGIC
}
