package kiosk

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/reader"
)

// TapReply is the control socket's reply to a tap.
type TapReply struct {
	OK      bool   `json:"ok"`
	Outcome string `json:"outcome"`
	// Screen is the screen shown first, and Text its words.
	Screen string `json:"screen"`
	Text   string `json:"text"`
	ID     string `json:"id,omitempty"`
	Seq    int64  `json:"seq,omitempty"`
	// Result is central's status when its Result came within
	// tap.await_result (Screen is then central's answer); absent otherwise.
	Result string `json:"result,omitempty"`
}

// StatusReply is the control socket's reply to status.
type StatusReply struct {
	OK             bool   `json:"ok"`
	DeviceID       string `json:"deviceId"`
	Version        string `json:"version"`
	Pending        int    `json:"pending"`
	OldestPendingS int64  `json:"oldestPendingS"`
	QueueBytes     int64  `json:"queueBytes"`
	MQTT           string `json:"mqtt"`
	// Subscribed: the broker granted the result and config subscriptions
	// (a broker may accept the connection and refuse them; the kiosk would
	// then never hear its Results).
	Subscribed    bool     `json:"subscribed"`
	RefusedTopics []string `json:"refusedTopics,omitempty"`
	Reader        string   `json:"reader"`
	Display       string   `json:"display"`
	Indicator     string   `json:"indicator"`
	Storage       string   `json:"storage"`
	ClockSynced   bool     `json:"clockSynced"`
	EventID       string   `json:"eventId"`
	Seq           int64    `json:"seq"`
	// Outcomes counts the taps by outcome since the queue was created.
	Outcomes       map[string]int64 `json:"outcomes"`
	LastTapAt      string           `json:"lastTapAt,omitempty"`
	Published      int64            `json:"published"`
	Republished    int64            `json:"republished"`
	Results        int64            `json:"results"`
	UnknownResults int64            `json:"unknownResults"`
	BadPayloads    int64            `json:"badPayloads"`
	// Provisioning and security.
	Provisioned       bool     `json:"provisioned"`
	PairingCode       string   `json:"pairingCode,omitempty"`
	Broker            string   `json:"broker,omitempty"`
	CertExpiresInDays *int     `json:"certExpiresInDays,omitempty"`
	ConfigSerial      int64    `json:"configSerial"`
	ConfigsRejected   int64    `json:"configsRejected"`
	Warnings          []string `json:"warnings,omitempty"`
}

// tapTimeout bounds how long a control-socket tap waits for its decision.
const tapTimeout = 10 * time.Second

func (k *Kiosk) handle(ctx context.Context, req control.Request) any {
	switch req.Op {
	case "tap":
		return k.handleTap(ctx, req.ChipNumber)
	case "status":
		return k.status(ctx)
	case "reload":
		return k.reload(ctx)
	case "queue-recover":
		return k.queueRecover(ctx)
	case "queue-reset":
		return k.queueReset(ctx, req.Force)
	case "identify":
		k.core.Identify()
		return struct {
			OK bool `json:"ok"`
		}{true}
	}
	return control.Fail("unknown op %q (tap, status, identify, reload, queue-recover, queue-reset)", req.Op)
}

func (k *Kiosk) handleTap(ctx context.Context, chip string) any {
	if k.pres == nil {
		return control.Fail("tap is only accepted with reader.driver = \"sim\" or \"pn532-emulated\" (this kiosk has %q)", k.cfg.Reader.Driver)
	}
	uid, err := reader.ParseChip(chip)
	if err != nil || len(uid) == 0 || len(uid) > 16 {
		return control.Fail("chipNumber %q is not a hex UID", chip)
	}
	ctx, cancel := context.WithTimeout(ctx, tapTimeout)
	defer cancel()
	ch, stop := k.core.Expect(reader.Tap{UID: uid}.Chip())
	defer stop()
	if err := k.pres.Present(ctx, uid); err != nil {
		return control.Fail("the card could not be put on the reader: %v", err) // err names its package
	}
	select {
	case d := <-ch:
		return TapReply{OK: true, Outcome: d.Outcome, Screen: string(d.Screen.Kind), Text: display.Plain(d.Screen), ID: d.ID, Seq: d.Seq,
			Result: d.Result}
	case <-ctx.Done():
		return control.Fail("no decision within %s", tapTimeout)
	}
}

// Status gathers what a technician (and the control socket) needs.
func (k *Kiosk) status(ctx context.Context) any {
	st, err := k.ob.Stats(ctx)
	if err != nil {
		return control.Fail("queue: %v", err)
	}
	snap := k.core.Snapshot()
	r := StatusReply{OK: true, DeviceID: k.cfg.DeviceID, Version: k.o.Version, Pending: st.Pending,
		QueueBytes: st.Bytes, MQTT: "disconnected", Reader: snap.Reader.String(), Display: snap.Display,
		Indicator: snap.Indicator, Storage: "ok",
		ClockSynced: snap.ClockSynced, EventID: snap.EventID, Seq: st.LastSeq, Outcomes: k.ob.Outcomes()}
	if !st.OldestQueuedAt.IsZero() {
		r.OldestPendingS = int64(k.o.Clock.Now().Sub(st.OldestQueuedAt) / time.Second)
	}
	if fwd := k.up.p.Load(); fwd != nil {
		fc := fwd.Counters()
		r.Published, r.Republished, r.Results, r.UnknownResults, r.BadPayloads =
			fc.Published, fc.Republished, fc.Results, fc.UnknownResults, fc.BadPayloads
		if fwd.Connected() {
			r.MQTT = "connected"
		}
		sub := fwd.Subscription()
		r.Subscribed, r.RefusedTopics = sub.Subscribed, sub.Refused
		if sub.Session && !fwd.Connected() {
			r.MQTT = "subscription-refused"
		}
		if sub.Session && len(sub.Refused) > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("the broker refused the subscription to %s (its ACL?); retrying; no checkin is sent while Results cannot arrive", strings.Join(sub.Refused, ", ")))
		}
	}
	k.provStatus(&r)
	if f, warn := k.storage.get(); f != nil {
		r.Storage = "fault"
		r.Warnings = append(r.Warnings, fmt.Sprintf("queue set aside as %s (%s); taps refused: run `kioskctl queue recover` or `kioskctl queue reset -force`", f.Aside, f.Reason))
	} else if warn != "" {
		r.Warnings = append(r.Warnings, warn)
	}
	if snap.Reader == reader.Fault && snap.ReaderErr != nil {
		r.Warnings = append(r.Warnings, "reader: "+snap.ReaderErr.Error())
	}
	if !snap.LastTapAt.IsZero() {
		r.LastTapAt = protocol.FormatTime(snap.LastTapAt)
	}
	return r
}
