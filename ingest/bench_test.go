package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/protocol"
)

// BenchmarkLedgerBatch books new checkins (distinct chips, enrolled on the
// fly) in transactions of different sizes, on disk, and reports checkins/s,
// for each backend (PostgreSQL when reachable, see backend_test.go). The
// batch-of-1 case is what a writer without batching would get. On
// PostgreSQL, sync=NORMAL is synchronous_commit=off.
func BenchmarkLedgerBatch(b *testing.B) {
	for _, be := range backends {
		for _, sync := range []string{"FULL", "NORMAL"} {
			for _, size := range []int{1, 16, 256} {
				b.Run(fmt.Sprintf("db=%s/sync=%s/batch=%d", be.name, sync, size), func(b *testing.B) {
					o := DefaultOpts()
					o.EnrollUnknown = true
					o.Synchronous = sync
					l := openAt(b, be.dsn(b), o)
					benchBatches(b, []*Ledger{l}, size)
				})
			}
		}
	}
}

// BenchmarkLedgerInstances is several writers (each its own Ledger, as
// separate ingest processes would be) booking distinct chips into one
// database at once: what the PostgreSQL ledger gains from a second and a
// fourth instance, and what SQLite's one-writer-at-a-time costs.
func BenchmarkLedgerInstances(b *testing.B) {
	for _, be := range backends {
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("db=%s/instances=%d/batch=64", be.name, n), func(b *testing.B) {
				o := DefaultOpts()
				o.EnrollUnknown = true
				dsn := be.dsn(b)
				ls := make([]*Ledger, n)
				for i := range ls {
					ls[i] = openAt(b, dsn, o)
				}
				benchBatches(b, ls, 64)
			})
		}
	}
}

// benchBatches books b.N batches of size new checkins, spread over ls
// (writing concurrently), and reports checkins/s.
func benchBatches(b *testing.B, ls []*Ledger, size int) {
	if err := ls[0].UpsertEvent(context.Background(), Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1}); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	batches := make(chan []Input, len(ls))
	go func() {
		defer close(batches)
		n := 0
		for i := 0; i < b.N; i++ {
			in := make([]Input, size)
			for j := range in {
				n++
				c := protocol.Checkin{V: 1, ID: newID(b), DeviceID: "kiosk-bench-01", Seq: int64(n),
					ChipNumber: fmt.Sprintf("04%012X", n), EventID: "evt-1", TappedAt: protocol.FormatTime(at),
					ClockSynced: true, BootID: "b", UptimeMs: int64(n)}
				in[j] = Input{Checkin: c, ReceivedAt: at}
			}
			batches <- in
		}
	}()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			for in := range batches {
				if _, err := l.ProcessBatch(context.Background(), in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "checkins/s")
}

// BenchmarkServiceEndToEnd publishes checkins from 10 kiosks through a real
// broker and waits for every Result: checkins/s through MQTT, batching and
// the fsync per batch. The broker's per-client in-flight window (100 in
// testbroker) bounds a batch, since checkins are acknowledged after commit.
func BenchmarkServiceEndToEnd(b *testing.B) {
	br := testbroker.Start(b)
	o := DefaultOpts()
	o.EnrollUnknown = true
	l := openLedger(b, o)
	svc, _ := runService(b, l, ServiceOpts{Broker: br.URL(), Logger: slog.New(slog.DiscardHandler)})
	res := subscribeResults(b, br.URL())
	const kiosks = 10
	clients := make([]mqtt.Client, kiosks)
	for i := range clients {
		clients[i] = connectClient(b, br.URL(), fmt.Sprintf("kiosk-bench-%02d", i))
	}
	ids := make([]string, b.N)
	payloads := make([][]byte, b.N)
	for i := range ids {
		c := checkinFor(b, fmt.Sprintf("kiosk-bench-%02d", i%kiosks), int64(i/kiosks+1), fmt.Sprintf("04%012X", i))
		ids[i], payloads[i] = c.ID, c.Encode()
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for k := 0; k < kiosks; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last mqtt.Token
			for i := k; i < b.N; i += kiosks {
				last = clients[k].Publish(protocol.Topic(prefix, fmt.Sprintf("kiosk-bench-%02d", k), protocol.KindCheckin), 1, false, payloads[i])
			}
			if last != nil {
				last.WaitTimeout(time.Minute)
			}
		}()
	}
	wg.Wait()
	res.wait(b, ids...)
	b.StopTimer()
	c := svc.Counters()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
	b.ReportMetric(float64(c.Results)/float64(max(c.Batches, 1)), "checkins/batch")
}

// benchDevices and benchWindow are the shape of the load the central-bench
// figures are taken with: checkins of 200 kiosks, at most 1 024 unanswered
// (what issue 15 measured from outside).
const (
	benchDevices = 200
	benchWindow  = 1024
	benchBatch   = 256
	// benchWarm batches go through the ledger and its yardsticks before
	// the clock starts: each run opens a new ledger, and its first batches
	// prepare the statements on the connection, plan them afresh five times
	// over before the server keeps a generic plan, read their ids and fill
	// the assignment cache, costs a running ingest pays once. Measured at
	// 20 480 checkins on a 2-core host (2026-12-03): the first five ledger
	// batches took 15 – 29 ms against 7 – 9 from the eighth on.
	benchWarm = 8
)

// benchRows makes n valid checkins of benchDevices kiosks, each of a distinct
// known card at evt-1, all to be saved, tapped a millisecond apart up to at
// (a fleet's taps at 1 000 a second). Taps all at one instant would tie on
// the leading column of the reports' index, and each insert would compare
// the six text columns after it: a cost no real stream has, borne by the
// ledger and the bare insert alike.
func benchRows(tb testing.TB, n int, at time.Time) []Input {
	in := make([]Input, n)
	for i := range in {
		d := i % benchDevices
		c := protocol.Checkin{V: 1, ID: newID(tb), DeviceID: fmt.Sprintf("kiosk-bench-%03d", d), Seq: int64(i/benchDevices + 1),
			ChipNumber: benchChip(i), EventID: "evt-1", CounterID: "balie",
			TappedAt:    protocol.FormatTime(at.Add(time.Duration(i-n+1) * time.Millisecond)),
			ClockSynced: true, BootID: fmt.Sprintf("boot-%03d", d), UptimeMs: int64(1000 + i)}
		in[i] = Input{Checkin: c, ReceivedAt: at}
	}
	return in
}

func benchChip(i int) string { return fmt.Sprintf("04B0%010X", i) }

// seedBench assigns evt-1 to the bench's kiosks from an hour before at, and
// makes the known cards 0…n-1 (in bulk: setting up is not what is
// measured).
func seedBench(tb testing.TB, l *Ledger, n int, at time.Time) {
	tb.Helper()
	ctx := context.Background()
	for d := range benchDevices {
		a := Assignment{DeviceID: fmt.Sprintf("kiosk-bench-%03d", d), Serial: 1, CounterID: "balie",
			Event: Event{ID: "evt-1", Points: 1, Period: protocol.PeriodDay, Volume: 1}, AssignedAt: at.Add(-time.Hour)}
		if _, err := l.Assign(ctx, a); err != nil {
			tb.Fatal(err)
		}
	}
	chips := make([]string, n)
	for i := range chips {
		chips[i] = benchChip(i)
	}
	if l.Dialect() == "postgres" {
		if _, err := l.DB().ExecContext(ctx, `INSERT INTO passholders (chip_number, total_points, blocked, created_at)
			SELECT c, 0, false, 'bench' FROM unnest($1::text[]) AS c`, chips); err != nil {
			tb.Fatal(err)
		}
		return
	}
	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	for _, c := range chips {
		if _, err := tx.ExecContext(ctx, `INSERT INTO passholders (chip_number, total_points, blocked, created_at) VALUES (?, 0, 0, 'bench')`, c); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// bareInsert is the yardstick of the ledger: the same checkin rows written
// as fast as the database takes them, in batches of the same size, one
// transaction each, on the ledger's own connections (so with the same
// durability: SQLite's synchronous pragma, PostgreSQL's synchronous_commit),
// into a table with the ledger's columns and indexes, and no rules at all.
// With totals it is the floor of a ledger that keeps each card's total:
// the same insert and, in the same transaction, each card's points added
// to a copy of the passholders, without a read or a rule.
type bareInsert struct {
	db       *sql.DB
	postgres bool
	name     string // of its tables: name_checkins, name_passholders
	totals   bool
}

// newBareInsert makes the yardstick's tables; with totals, a copy of the
// ledger's passholders (seeded already).
func newBareInsert(tb testing.TB, l *Ledger, name string, totals bool) *bareInsert {
	tb.Helper()
	bi := &bareInsert{db: l.DB(), postgres: l.Dialect() == "postgres", name: name, totals: totals}
	ddl := []string{`CREATE TABLE @_checkins (id TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq BIGINT NOT NULL,
		chip_number TEXT NOT NULL, event_id TEXT NOT NULL, counter_id TEXT NOT NULL, status TEXT NOT NULL,
		points INTEGER NOT NULL, tapped_at TEXT NOT NULL, clock_synced BOOLEAN NOT NULL, dated_ms BIGINT NOT NULL,
		received_at TEXT NOT NULL, result BLOB NOT NULL)`,
		`CREATE INDEX @_saved ON @_checkins (chip_number, event_id, dated_ms) WHERE status = 'saved'`,
		`CREATE INDEX @_report ON @_checkins (dated_ms, counter_id, event_id, device_id, status, points, chip_number)`}
	if bi.postgres {
		ddl[0] = strings.Replace(ddl[0], "BLOB", "BYTEA", 1)
		ddl[0] = strings.Replace(ddl[0], "result BYTEA NOT NULL", "result BYTEA NOT NULL, booked BIGINT GENERATED ALWAYS AS IDENTITY", 1)
		ddl = append(ddl, `CREATE INDEX @_booked ON @_checkins (booked)`)
	}
	if totals {
		ph := `CREATE TABLE @_passholders (chip_number TEXT PRIMARY KEY, total_points INTEGER NOT NULL,
			blocked BOOLEAN NOT NULL, created_at TEXT NOT NULL)`
		if bi.postgres {
			ph += " WITH (fillfactor = 70)" // as migration 0004 sets the ledger's
		}
		ddl = append(ddl, ph, `INSERT INTO @_passholders SELECT chip_number, total_points, blocked, created_at FROM passholders`)
	}
	for _, q := range ddl {
		if _, err := bi.db.Exec(bi.q(q)); err != nil {
			tb.Fatal(err)
		}
	}
	return bi
}

// insert writes the rows of in as saved checkins, in one transaction: on
// PostgreSQL in one statement (unnest of one array per column), on SQLite
// with one prepared insert per row (in process, a statement costs no round
// trip).
func (bi *bareInsert) insert(ctx context.Context, in []Input) error {
	tx, err := bi.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := bi.rows(ctx, tx, in); err != nil {
		return err
	}
	if bi.totals {
		if err := bi.addTotals(ctx, tx, in); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// q is a statement on the yardstick's own tables (@ is its name).
func (bi *bareInsert) q(sql string) string { return strings.ReplaceAll(sql, "@", bi.name) }

// rows inserts the checkin rows of in.
func (bi *bareInsert) rows(ctx context.Context, tx *sql.Tx, in []Input) error {
	res := protocol.Result{V: protocol.Version, Status: protocol.StatusSaved, NewPoints: 1, TotalPoints: 1,
		EndUserMessage: savedMessage(1, 1)}
	if bi.postgres {
		var r bareRows
		for _, x := range in {
			res.ID = x.Checkin.ID
			r.add(x, res.Encode())
		}
		_, err := tx.ExecContext(ctx, bi.q(`INSERT INTO @_checkins (id, device_id, seq, chip_number, event_id, counter_id,
			status, points, tapped_at, clock_synced, dated_ms, received_at, result)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::int[], $9::text[], $10::bool[], $11::bigint[], $12::text[], $13::bytea[])`),
			r.id, r.device, r.seq, r.chip, r.event, r.counter, r.status, r.points, r.tapped, r.synced, r.dated,
			r.received, r.result)
		return err
	}
	st, err := tx.PrepareContext(ctx, bi.q(`INSERT INTO @_checkins (id, device_id, seq, chip_number, event_id, counter_id,
		status, points, tapped_at, clock_synced, dated_ms, received_at, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, x := range in {
		c := x.Checkin
		res.ID = c.ID
		if _, err := st.ExecContext(ctx, c.ID, c.DeviceID, c.Seq, c.ChipNumber, c.EventID, c.CounterID, res.Status, 1,
			c.TappedAt, c.ClockSynced, syncedDate(x).UnixMilli(), protocol.FormatTime(x.ReceivedAt), res.Encode()); err != nil {
			return err
		}
	}
	return nil
}

// addTotals adds each card's points of in to the yardstick's passholders:
// on PostgreSQL in one statement, on SQLite one prepared update per card.
// Every card must be found: a floor that updated nothing would flatter
// itself.
func (bi *bareInsert) addTotals(ctx context.Context, tx *sql.Tx, in []Input) error {
	chips, pts := cardPoints(in)
	var updated int64
	if bi.postgres {
		r, err := tx.ExecContext(ctx, bi.q(`UPDATE @_passholders AS p SET total_points = p.total_points + u.d
			FROM unnest($1::text[], $2::int[]) AS u(c, d) WHERE p.chip_number = u.c`), chips, pts)
		if err != nil {
			return err
		}
		if updated, err = r.RowsAffected(); err != nil {
			return err
		}
	} else {
		up, err := tx.PrepareContext(ctx, bi.q(`UPDATE @_passholders SET total_points = total_points + ? WHERE chip_number = ?`))
		if err != nil {
			return err
		}
		defer up.Close()
		for i, c := range chips {
			r, err := up.ExecContext(ctx, pts[i], c)
			if err != nil {
				return err
			}
			n, err := r.RowsAffected()
			if err != nil {
				return err
			}
			updated += n
		}
	}
	if updated != int64(len(chips)) {
		return fmt.Errorf("floor: %d of %d cards updated", updated, len(chips))
	}
	return nil
}

// cardPoints is the point each row of in saves (benchRows' checkins each
// save evt-1's one point), summed per card, in card order (the order the
// ledger updates them in).
func cardPoints(in []Input) ([]string, []int32) {
	sum := make(map[string]int32, len(in))
	for _, x := range in {
		sum[x.Checkin.ChipNumber]++
	}
	chips := slices.Sorted(maps.Keys(sum))
	pts := make([]int32, len(chips))
	for i, c := range chips {
		pts[i] = sum[c]
	}
	return chips, pts
}

// bareRows are checkin rows as one array per column.
type bareRows struct {
	id, device, chip, event, counter, status, tapped, received []string
	seq, dated                                                 []int64
	points                                                     []int32
	synced                                                     []bool
	result                                                     [][]byte
}

func (r *bareRows) add(x Input, result []byte) {
	c := x.Checkin
	r.id, r.device, r.chip = append(r.id, c.ID), append(r.device, c.DeviceID), append(r.chip, c.ChipNumber)
	r.event, r.counter, r.status = append(r.event, c.EventID), append(r.counter, c.CounterID), append(r.status, protocol.StatusSaved)
	r.tapped, r.received = append(r.tapped, c.TappedAt), append(r.received, protocol.FormatTime(x.ReceivedAt))
	r.seq, r.dated, r.points = append(r.seq, c.Seq), append(r.dated, syncedDate(x).UnixMilli()), append(r.points, 1)
	r.synced, r.result = append(r.synced, c.ClockSynced), append(r.result, result)
}

// BenchmarkIngestVsBare books b.N valid checkins of 200 kiosks (known
// cards, all saved) through Ledger.ProcessBatch in batches of 256, each
// batch followed by a bare batched insert of the same rows on the same
// connections (bareInsert): the ledger's rate, the yardstick's, and their
// ratio, from one run, so that a machine loaded by other work weighs on
// both alike; benchWarm batches before the clock starts, through all three
// alike. Synchronous FULL (a ledger of record). The floor (the insert
// and the cards' totals, no reads, no rules) splits the ledger's distance
// to the bare insert: what keeping totals costs, and what the rules do.
func BenchmarkIngestVsBare(b *testing.B) {
	for _, be := range backends {
		b.Run("db="+be.name, func(b *testing.B) {
			l := openAt(b, be.dsn(b), DefaultOpts())
			at := time.Now()
			warm := benchWarm * benchBatch
			seedBench(b, l, warm+b.N, at)
			bi, fl := newBareInsert(b, l, "bare", false), newBareInsert(b, l, "floor", true)
			var ti *tightInsert
			if be.name == "postgres" {
				ti = newTightInsert(b, l)
			}
			all := benchRows(b, warm+b.N, at)
			ctx := context.Background()
			var ledger, bare, floor, tight time.Duration
			for i := 0; i < len(all); i += benchBatch {
				if i == warm {
					ledger, bare, floor, tight = 0, 0, 0, 0
					b.ResetTimer()
				}
				batch := all[i:min(i+benchBatch, len(all))]
				t0 := time.Now()
				out, err := l.ProcessBatch(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := bi.insert(ctx, batch); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if err := fl.insert(ctx, batch); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				if ti != nil {
					if err := ti.insert(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				ledger, bare, floor, tight = ledger+t1.Sub(t0), bare+t2.Sub(t1), floor+t3.Sub(t2), tight+time.Since(t3)
				if out[0].Result.Status != protocol.StatusSaved {
					b.Fatalf("not saved: %+v", out[0].Result)
				}
			}
			b.StopTimer()
			in := all[warm:]
			lr, br, fr := float64(len(in))/ledger.Seconds(), float64(len(in))/bare.Seconds(), float64(len(in))/floor.Seconds()
			b.ReportMetric(lr, "checkins/s")
			b.ReportMetric(br, "bare-rows/s")
			b.ReportMetric(lr/br, "×bare")
			b.ReportMetric(fr, "floor-rows/s")
			b.ReportMetric(lr/fr, "×floor")
			if ti != nil {
				tr := float64(len(in)) / tight.Seconds()
				b.ReportMetric(tr, "tight-rows/s")
				b.ReportMetric(lr/tr, "×tight")
			}
		})
	}
}

// BenchmarkIngestMQTT is the ingest measured from outside, as issue 15 did:
// b.N valid checkins of 200 kiosks published to a real broker, at most 1 024
// unanswered, and the time until every Result came back; per ledger
// (synchronous FULL), and on PostgreSQL with one and two Services sharing
// the checkins (SharedGroup), each with its own Ledger as separate
// kiosk-ingest processes would have.
func BenchmarkIngestMQTT(b *testing.B) {
	for _, be := range backends {
		ns := []int{1}
		if be.name == "postgres" {
			ns = []int{1, 2}
		}
		for _, n := range ns {
			b.Run(fmt.Sprintf("db=%s/instances=%d", be.name, n), func(b *testing.B) { benchIngestMQTT(b, be.dsn(b), n) })
		}
	}
}

func benchIngestMQTT(b *testing.B, dsn string, instances int) {
	br := testbroker.Start(b)
	app := ""
	if IsPostgres(dsn) { // our server processes are found by this name
		app = fmt.Sprintf("kiosk-bench-%d", time.Now().UnixNano())
		dsn += "&application_name=" + app
	}
	ls := make([]*Ledger, instances)
	for i := range ls {
		ls[i] = openAt(b, dsn, DefaultOpts())
	}
	seedBench(b, ls[0], b.N, time.Now())
	var svcs []*Service
	for i, l := range ls {
		so := ServiceOpts{Broker: br.URL(), ClientID: fmt.Sprintf("ingest-bench-%d", i), Logger: slog.New(slog.DiscardHandler)}
		if instances > 1 {
			so.SharedGroup = "bench"
		}
		svc, _ := runService(b, l, so)
		svcs = append(svcs, svc)
	}
	in := benchRows(b, b.N, time.Now())
	payloads := make([][]byte, len(in))
	for i, x := range in {
		payloads[i] = x.Checkin.Encode()
	}
	window := make(chan struct{}, benchWindow)
	all := make(chan struct{})
	var mu sync.Mutex
	answered := make(map[string]bool, len(in))
	pub := connectClient(b, br.URL(), "bench-kiosks")
	sub := connectClient(b, br.URL(), "bench-results")
	onResult := func(_ mqtt.Client, m mqtt.Message) {
		r, err := protocol.DecodeResult(m.Payload())
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if answered[r.ID] {
			return
		}
		answered[r.ID] = true
		<-window
		if len(answered) == len(in) {
			close(all)
		}
	}
	if tok := sub.Subscribe(prefix+"/+/result", 1, onResult); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	cpu0 := benchCPU(b, ls[0], app, br.Dir())
	b.ResetTimer()
	for i, x := range in {
		window <- struct{}{}
		pub.Publish(protocol.Topic(prefix, x.Checkin.DeviceID, protocol.KindCheckin), 1, false, payloads[i])
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d Results after 5 minutes", len(answered), len(in))
	}
	b.StopTimer()
	var results, batches int64
	for _, s := range svcs {
		c := s.Counters()
		results, batches = results+c.Results, batches+c.Batches
	}
	cpu := benchCPU(b, ls[0], app, br.Dir()).sub(cpu0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
	b.ReportMetric(float64(results)/float64(max(batches, 1)), "checkins/batch")
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) * 1000 }
	b.ReportMetric(per(cpu.self), "cpu-ms/1k-go")
	b.ReportMetric(per(cpu.db), "cpu-ms/1k-pg")
	b.ReportMetric(per(cpu.broker), "cpu-ms/1k-broker")
	if cpu.hostTotal > 0 {
		b.ReportMetric(100*float64(cpu.hostBusy)/float64(cpu.hostTotal), "host-busy-%")
	}
}

// cpuTimes is the processor time used so far by this process (the ingest,
// the kiosks and the results' reader of the benchmark), by the ledger's own
// PostgreSQL server processes and by the broker: what a checkin costs each,
// whatever else loads the machine (the rate alone says more about the other
// users of a shared machine than about the ingest).
//
// hostBusy and hostTotal are the whole machine's processor time, busy and
// in all (ticks of /proc/stat, over every processor): how near the host is
// to its limit, whoever used it.
type cpuTimes struct {
	self, db, broker    time.Duration
	hostBusy, hostTotal int64
}

func (c cpuTimes) sub(d cpuTimes) cpuTimes {
	return cpuTimes{c.self - d.self, c.db - d.db, c.broker - d.broker, c.hostBusy - d.hostBusy, c.hostTotal - d.hostTotal}
}

// hostCPU reads the first line of /proc/stat: user nice system idle iowait
// irq softirq steal …; idle and iowait are the time nobody could use.
func hostCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:9] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

func benchCPU(tb testing.TB, l *Ledger, app, brokerDir string) cpuTimes {
	var c cpuTimes
	c.hostBusy, c.hostTotal = hostCPU()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if app != "" {
		rows, err := l.DB().Query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
		if err != nil {
			tb.Fatal(err)
		}
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				c.db += procCPU(pid)
			}
		}
		rows.Close()
	}
	if brokerDir != "" {
		ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, m := range ms {
			b, err := os.ReadFile(m)
			if err == nil && bytes.Contains(b, []byte(brokerDir)) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(m)))
				c.broker += procCPU(pid)
			}
		}
	}
	return c
}

// procCPU reads a process's user and system time from /proc (in clock
// ticks of 1/100 s, as Linux reports them to user space).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// tightInsert is the bare insert as tight as the ledger's own writes make
// theirs (pgwrite.go), PostgreSQL only: BEGIN, the one insert with its
// rows encoded by params as the ledger's are, and COMMIT, in one pipeline, so one round
// trip a batch where bareInsert (database/sql, pgx's encoding) makes three.
// It is reported beside the bare insert so that the ratio is not read only
// against a yardstick slower than the ledger's own techniques could make it.
type tightInsert struct {
	db *sql.DB
	p  params
}

func newTightInsert(tb testing.TB, l *Ledger) *tightInsert {
	tb.Helper()
	newBareInsert(tb, l, "tight", false) // its tables
	return &tightInsert{db: l.DB()}
}

const tightSQL = `INSERT INTO tight_checkins (id, device_id, seq, chip_number, event_id, counter_id,
	status, points, tapped_at, clock_synced, dated_ms, received_at, result)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::int[], $9::text[], $10::bool[], $11::bigint[], $12::text[], $13::bytea[])`

func (ti *tightInsert) insert(ctx context.Context, in []Input) error {
	res := protocol.Result{V: protocol.Version, Status: protocol.StatusSaved, NewPoints: 1, TotalPoints: 1,
		EndUserMessage: savedMessage(1, 1)}
	r := newCheckinRows(len(in))
	for _, x := range in {
		res.ID = x.Checkin.ID
		r.add(x, decision{res: res, points: 1, datedMs: syncedDate(x).UnixMilli()}, res.Encode())
	}
	conn, err := ti.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		sd, err := c.Prepare(ctx, "bench_tight_insert", tightSQL)
		if err != nil {
			return err
		}
		p := &ti.p
		p.rows(r)
		pl := c.PgConn().StartPipeline(ctx)
		pl.SendQueryParams("BEGIN", nil, nil, nil, nil)
		pl.SendQueryStatement(sd, p.values(), binaryParams, nil)
		pl.SendQueryParams("COMMIT", nil, nil, nil, nil)
		if err := pl.Sync(); err != nil {
			return err
		}
		var first error
		for range 3 {
			res, err := pl.GetResults()
			if err == nil {
				_, err = res.(*pgconn.ResultReader).Close()
			}
			if err != nil {
				first = err
				break
			}
		}
		if err := pl.Close(); first == nil {
			first = err
		}
		if first != nil && c.PgConn().TxStatus() != 'I' {
			c.Exec(context.Background(), "ROLLBACK")
		}
		return first
	})
}
