package protocol

import (
	"fmt"
	"time"
)

// PeriodBucket names the constraint period that t falls in, in loc: the key
// under which check-ins of one passholder for one event are counted. Kiosk
// and central compute it the same way.
func PeriodBucket(period string, t time.Time, loc *time.Location) (string, error) {
	t = t.In(loc)
	switch period {
	case PeriodAbsolute:
		return "A", nil
	case PeriodDay:
		return t.Format("D2006-01-02"), nil
	case PeriodWeek:
		y, w := t.ISOWeek()
		return fmt.Sprintf("W%04d-%02d", y, w), nil
	case PeriodMonth:
		return t.Format("M2006-01"), nil
	case PeriodQuarter:
		return fmt.Sprintf("Q%04d-%d", t.Year(), (int(t.Month())-1)/3+1), nil
	case PeriodYear:
		return fmt.Sprintf("Y%04d", t.Year()), nil
	}
	return "", fmt.Errorf("protocol: period %q: %w", period, ErrInvalid)
}
