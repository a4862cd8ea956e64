package report

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkReport runs each report over a ledger of 1 000 000 checkins
// (KIOSK_REPORT_BENCH_ROWS gives another size), built once per backend by
// one INSERT … SELECT: a year of 2026 in booking order, 300 kiosks, 120
// events at 40 counters, 100 000 cards, 85 % saved, 10 % maximum-reached,
// 5 % card-blocked, each row with a Result of realistic size. The target is
// 2 s a report on a 2-core machine, SQLite and PostgreSQL.
//
//	go test -run '^$' -bench Report ./report/
func BenchmarkReport(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("KIOSK_REPORT_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("KIOSK_REPORT_BENCH_ROWS=%q", s)
		}
	}
	for _, be := range backends {
		b.Run("db="+be.name, func(b *testing.B) {
			dsn := be.dsn(b)
			l := openLedger(b, dsn)
			start := time.Now()
			bulkLoad(b, dsn, n)
			b.Logf("%s: %d rows loaded in %v", be.name, n, time.Since(start).Round(time.Millisecond))
			r := openReader(b, l)
			for _, q := range []struct {
				name string
				q    Query
			}{
				{"by=counter", Query{By: ByCounter}},
				{"by=event", Query{By: ByEvent}},
				{"by=device", Query{By: ByDevice}},
				{"by=day", Query{By: ByDay}},
				{"quarter=2026Q4", Query{By: ByCounterEvent, Quarter: Quarter{2026, 4}}},
				{"by=day/from=2026-06-01/to=2026-06-30", Query{By: ByDay, From: Date{2026, 6, 1}, To: Date{2026, 6, 30}}},
			} {
				b.Run(q.name, func(b *testing.B) {
					var t *Table
					for b.Loop() {
						var err error
						if t, err = r.Run(context.Background(), q.q); err != nil {
							b.Fatal(err)
						}
					}
					var rows int64
					for _, r := range t.Rows {
						rows += r.Checkins
					}
					if q.q.Quarter.IsZero() && q.q.From.IsZero() && rows != int64(n) {
						b.Fatalf("the report counts %d checkins, want %d", rows, n)
					}
					b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/report")
					b.ReportMetric(float64(len(t.Rows)), "groups")
				})
			}
		})
	}
}

// bulkLoad inserts n checkins straight into the ledger's table.
func bulkLoad(b *testing.B, dsn string, n int) {
	db := rawDB(b, dsn)
	ctx := context.Background()
	const year = int64(365 * 24 * 3600 * 1000)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	step := year / int64(n)
	result := strings.Repeat("x", 40)
	var q string
	if strings.HasPrefix(dsn, "postgres") {
		q = fmt.Sprintf(`INSERT INTO checkins (id, device_id, seq, chip_number, event_id, counter_id, status, points,
			tapped_at, clock_synced, dated_ms, received_at, result)
		SELECT '0193a1f4-7c1e-7d2a-9b1f-' || lpad(to_hex(i), 12, '0'), 'kiosk-' || lpad((i %% 300)::text, 3, '0'), i,
			'04' || lpad(upper(to_hex((i::bigint * 7919) %% 100000)), 12, '0'), 'evt-' || lpad((i %% 120)::text, 3, '0'),
			'balie-' || lpad((i %% 40)::text, 2, '0'),
			CASE WHEN i %% 20 < 17 THEN 'saved' WHEN i %% 20 < 19 THEN 'maximum-reached' ELSE 'card-blocked' END,
			CASE WHEN i %% 20 < 17 THEN 1 ELSE 0 END,
			to_char(to_timestamp((%d + i::bigint * %d) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), true,
			%d + i::bigint * %d, '2026-12-01T00:00:00.000Z',
			convert_to('{"v":1,"id":"0193a1f4-7c1e-7d2a-9b1f-' || lpad(to_hex(i), 12, '0') ||
				'","status":"saved","newPoints":1,"totalPoints":23,"endUserMessage":{"nl":"Je spaarde 1 punt. %s"}}', 'UTF8')
		FROM generate_series(1, %d) AS i`, start, step, start, step, result, n)
	} else {
		q = fmt.Sprintf(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d)
		INSERT INTO checkins (id, device_id, seq, chip_number, event_id, counter_id, status, points,
			tapped_at, clock_synced, dated_ms, received_at, result)
		SELECT printf('0193a1f4-7c1e-7d2a-9b1f-%%012x', i), printf('kiosk-%%03d', i %% 300), i,
			printf('04%%012X', (i * 7919) %% 100000), printf('evt-%%03d', i %% 120), printf('balie-%%02d', i %% 40),
			CASE WHEN i %% 20 < 17 THEN 'saved' WHEN i %% 20 < 19 THEN 'maximum-reached' ELSE 'card-blocked' END,
			CASE WHEN i %% 20 < 17 THEN 1 ELSE 0 END,
			strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', (%d + i * %d) / 1000.0, 'unixepoch'), 1,
			%d + i * %d, '2026-12-01T00:00:00.000Z',
			CAST(printf('{"v":1,"id":"0193a1f4-7c1e-7d2a-9b1f-%%012x","status":"saved","newPoints":1,"totalPoints":23,"endUserMessage":{"nl":"Je spaarde 1 punt. %s"}}', i) AS BLOB)
		FROM s`, n, start, step, start, step, result)
	}
	if _, err := db.ExecContext(ctx, q); err != nil {
		b.Fatalf("bulk load: %v", err)
	}
	// A live ledger's WAL is checkpointed as it goes (every 1000 pages);
	// the load's one transaction left it all in the WAL.
	stmts := []string{"PRAGMA wal_checkpoint(TRUNCATE)", "ANALYZE"}
	if strings.HasPrefix(dsn, "postgres") {
		stmts = []string{"VACUUM (ANALYZE) checkins"}
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
}
