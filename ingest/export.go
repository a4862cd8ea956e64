package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Entry is one ledger row as `kiosk-ingest ledger` prints it. DatedAt, the
// instant the constraint was applied to, is an addition to the documented
// fields.
type Entry struct {
	ID         string `json:"id"`
	DeviceID   string `json:"deviceId"`
	Seq        int64  `json:"seq"`
	ChipNumber string `json:"chipNumber"`
	EventID    string `json:"eventId"`
	Status     string `json:"status"`
	Points     int    `json:"points"`
	TappedAt   string `json:"tappedAt"`
	ReceivedAt string `json:"receivedAt"`
	DatedAt    string `json:"datedAt"`
}

// Entries calls fn for every ledger row in the order they were booked.
func (l *Ledger) Entries(ctx context.Context, fn func(Entry) error) error {
	rows, err := l.db.QueryContext(ctx, l.d.entries)
	if err != nil {
		return fmt.Errorf("ingest: entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var dated int64
		if err := rows.Scan(&e.ID, &e.DeviceID, &e.Seq, &e.ChipNumber, &e.EventID, &e.Status, &e.Points,
			&e.TappedAt, &e.ReceivedAt, &dated); err != nil {
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

// WriteJSONLines prints the ledger to w, one JSON object per line.
func (l *Ledger) WriteJSONLines(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := l.Entries(ctx, func(e Entry) error { return enc.Encode(e) }); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ingest: write ledger: %w", err)
	}
	return nil
}
