package protocol

import (
	"fmt"
	"time"
)

// PeriodRange returns the constraint period that t falls in as the half-open
// interval [start, end), on the local calendar of loc (Europe/Brussels for
// UiTPAS): a DAY runs from local midnight to local midnight (23 or 25 hours
// around a DST change), a WEEK is the ISO week from Monday 00:00, a QUARTER
// starts in January, April, July or October. ABSOLUTE has no bounds: start
// and end are zero. This is the one calendar kiosk and central share.
func PeriodRange(period string, t time.Time, loc *time.Location) (start, end time.Time, err error) {
	l := t.In(loc)
	y, m, d := l.Date()
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, loc) }
	switch period {
	case PeriodAbsolute:
		return time.Time{}, time.Time{}, nil
	case PeriodDay:
		return day(y, m, d), day(y, m, d+1), nil
	case PeriodWeek:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		return day(y, m, d-back), day(y, m, d-back+7), nil
	case PeriodMonth:
		return day(y, m, 1), day(y, m+1, 1), nil
	case PeriodQuarter:
		q := time.Month((int(m)-1)/3*3 + 1)
		return day(y, q, 1), day(y, q+3, 1), nil
	case PeriodYear:
		return day(y, 1, 1), day(y+1, 1, 1), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("protocol: period %q: %w", period, ErrInvalid)
}

// PeriodBucket names the constraint period that t falls in, in loc: the key
// under which a kiosk counts check-ins of one passholder for one event.
func PeriodBucket(period string, t time.Time, loc *time.Location) (string, error) {
	start, _, err := PeriodRange(period, t, loc)
	if err != nil {
		return "", err
	}
	switch period {
	case PeriodAbsolute:
		return "A", nil
	case PeriodDay:
		return start.Format("D2006-01-02"), nil
	case PeriodWeek:
		y, w := start.ISOWeek()
		return fmt.Sprintf("W%04d-%02d", y, w), nil
	case PeriodMonth:
		return start.Format("M2006-01"), nil
	case PeriodQuarter:
		return fmt.Sprintf("Q%04d-%d", start.Year(), (int(start.Month())-1)/3+1), nil
	}
	return start.Format("Y2006"), nil
}
