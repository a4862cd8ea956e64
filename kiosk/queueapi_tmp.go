package kiosk

// Temporary stand-ins until the queue package's API for unusable databases
// lands; replaced by queue.ErrUnusable, queue.SetAside, queue.Salvage and
// queue.CountPending.

import (
	"errors"
	"time"

	"github.com/uitpas/tap-kiosk/queue"
)

var qErrUnusable = errors.New("queue: unusable (placeholder)")

func qSetAside(path string, now time.Time) (string, error) { return "", errors.New("not yet") }
func qSalvage(src string, dst *queue.Outbox) (int, error)  { return 0, errors.New("not yet") }
func qCountPending(path string) (int, error)               { return 0, errors.New("not yet") }
