package ingest

import (
	"math"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Bucket returns the period of a check-in constraint that t falls in as the
// half-open interval [start, end) — protocol.PeriodRange, the calendar the
// kiosks share — with ABSOLUTE, and an unknown period (the strictest
// reading), as all of time.
func Bucket(period string, t time.Time, loc *time.Location) (start, end time.Time) {
	s, e, err := protocol.PeriodRange(period, t, loc)
	if err != nil || period == protocol.PeriodAbsolute {
		return time.UnixMilli(math.MinInt64), time.UnixMilli(math.MaxInt64)
	}
	return s, e
}

// bucketMs is Bucket in unix milliseconds, the ledger's unit.
func bucketMs(period string, t time.Time, loc *time.Location) (int64, int64) {
	if !protocol.ValidPeriod(period) || period == protocol.PeriodAbsolute {
		return math.MinInt64, math.MaxInt64
	}
	s, e := Bucket(period, t, loc)
	return s.UnixMilli(), e.UnixMilli()
}
