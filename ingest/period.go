package ingest

import (
	"math"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

// Bucket returns the period of a check-in constraint that t falls in, as the
// half-open interval [start, end) of instants, computed on the local calendar
// of loc (Europe/Brussels for UiTPAS): a day runs from local midnight to local
// midnight, so it is 23 or 25 hours long around a DST change; WEEK is the ISO
// week (Monday 00:00); QUARTER starts in January, April, July and October.
// ABSOLUTE is one bucket for all time. An unknown period is treated as
// ABSOLUTE, the strictest reading.
func Bucket(period string, t time.Time, loc *time.Location) (start, end time.Time) {
	l := t.In(loc)
	y, m, d := l.Date()
	switch period {
	case protocol.PeriodDay:
		return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case protocol.PeriodWeek:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc), time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	case protocol.PeriodMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	case protocol.PeriodQuarter:
		q := time.Month((int(m)-1)/3*3 + 1)
		return time.Date(y, q, 1, 0, 0, 0, 0, loc), time.Date(y, q+3, 1, 0, 0, 0, 0, loc)
	case protocol.PeriodYear:
		return time.Date(y, 1, 1, 0, 0, 0, 0, loc), time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
	}
	return time.UnixMilli(math.MinInt64), time.UnixMilli(math.MaxInt64)
}

// bucketMs is Bucket in unix milliseconds, the ledger's unit.
func bucketMs(period string, t time.Time, loc *time.Location) (int64, int64) {
	if !protocol.ValidPeriod(period) || period == protocol.PeriodAbsolute {
		return math.MinInt64, math.MaxInt64
	}
	s, e := Bucket(period, t, loc)
	return s.UnixMilli(), e.UnixMilli()
}
