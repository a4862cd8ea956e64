package ingest

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Entry is one ledger row as `kiosk-ingest ledger` prints it. DatedAt, the
// instant the constraint was applied to, CounterID and ClockSynced are
// additions to the documented fields.
type Entry struct {
	ID          string `json:"id"`
	DeviceID    string `json:"deviceId"`
	Seq         int64  `json:"seq"`
	ChipNumber  string `json:"chipNumber"`
	EventID     string `json:"eventId"`
	CounterID   string `json:"counterId"`
	Status      string `json:"status"`
	Points      int    `json:"points"`
	TappedAt    string `json:"tappedAt"`
	ClockSynced bool   `json:"clockSynced"`
	ReceivedAt  string `json:"receivedAt"`
	DatedAt     string `json:"datedAt"`
}

// Entries calls fn for every ledger row in the order they were booked, with
// whole chip numbers.
func (l *Ledger) Entries(ctx context.Context, fn func(Entry) error) error {
	rows, err := l.db.QueryContext(ctx, l.d.entries)
	if err != nil {
		return fmt.Errorf("ingest: entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var dated int64
		if err := rows.Scan(&e.ID, &e.DeviceID, &e.Seq, &e.ChipNumber, &e.EventID, &e.CounterID, &e.Status, &e.Points,
			&e.TappedAt, &e.ClockSynced, &e.ReceivedAt, &dated); err != nil {
			return fmt.Errorf("ingest: entries: %w", err)
		}
		e.DatedAt = protocol.FormatTime(time.UnixMilli(dated))
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ingest: entries: %w", err)
	}
	return nil
}

// ExportOpts say how WriteLedger prints the ledger.
type ExportOpts struct {
	// FullChips prints whole chip numbers; otherwise each is masked
	// (protocol.MaskChip: first and last byte only), so that a printed or
	// mailed ledger carries no card number.
	FullChips bool
}

// WriteLedger prints the ledger to w, one JSON object per line, in booking
// order, with chip numbers masked unless o.FullChips.
func (l *Ledger) WriteLedger(ctx context.Context, w io.Writer, o ExportOpts) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := l.Entries(ctx, func(e Entry) error {
		if !o.FullChips {
			e.ChipNumber = protocol.MaskChip(e.ChipNumber)
		}
		return enc.Encode(e)
	}); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ingest: write ledger: %w", err)
	}
	return nil
}

// WriteJSONLines prints the ledger to w, one JSON object per line, with
// whole chip numbers (WriteLedger with FullChips).
func (l *Ledger) WriteJSONLines(ctx context.Context, w io.Writer) error {
	return l.WriteLedger(ctx, w, ExportOpts{FullChips: true})
}

// ReadOnly opens a second handle on the ledger's database for long reads
// (statistics, exports; package report), which the caller closes. On
// SQLite it is a pool of its own on the same file, refusing writes
// (query_only): a report that scans for a second then never holds the
// ledger's one writer connection, and in WAL mode it does not block the
// writer either. On PostgreSQL it is a small pool of read-only sessions
// (default_transaction_read_only) on the same URL, with JIT off (it costs
// more than it saves on a report's one aggregate) and work_mem 64MB (a
// report's groups and distinct cards are sorted in memory, not on disk).
func (l *Ledger) ReadOnly() (*sql.DB, error) {
	if l.d == postgresDialect {
		u, err := url.Parse(l.path)
		if err != nil {
			return nil, fmt.Errorf("ingest: read-only %s: %w", redact(l.path), ErrInvalid)
		}
		q := u.Query()
		q.Set("default_transaction_read_only", "on")
		for k, v := range map[string]string{"jit": "off", "work_mem": "64MB"} {
			if q.Get(k) == "" {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		db, err := sql.Open("pgx", u.String())
		if err != nil {
			return nil, fmt.Errorf("ingest: read-only %s: %w", redact(l.path), err)
		}
		db.SetMaxOpenConns(2)
		return db, nil
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	// Sorts and DISTINCT in memory; the file mapped rather than read
	// page by page into a 2 MB cache.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "mmap_size(1073741824)")
	q.Add("_pragma", "cache_size(-65536)")
	db, err := sql.Open("sqlite", "file:"+l.path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("ingest: read-only %s: %w", l.path, err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
}
