package protocol

import "fmt"

// Checkin is a tap on its way to central.
type Checkin struct {
	V           int    `json:"v"`
	ID          string `json:"id"`
	DeviceID    string `json:"deviceId"`
	Seq         int64  `json:"seq"`
	ChipNumber  string `json:"chipNumber"`
	EventID     string `json:"eventId"`
	CounterID   string `json:"counterId"`
	TappedAt    string `json:"tappedAt"`
	ClockSynced bool   `json:"clockSynced"`
	BootID      string `json:"bootId"`
	UptimeMs    int64  `json:"uptimeMs"`
}

// ValidID reports whether id looks like a lower-case UUID (8-4-4-4-12
// hexadecimal digits), checked by hand as ValidDeviceID is.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// Encode returns the wire form.
func (c Checkin) Encode() []byte { c.V = Version; return encode(c) }

// DecodeCheckin parses and validates a Checkin.
func DecodeCheckin(b []byte) (Checkin, error) {
	c, err := decodePlain(b, decodeCheckinFast)
	if err != nil {
		return Checkin{}, err
	}
	return validateCheckin(c)
}

// validateCheckin checks the fields of a decoded Checkin.
func validateCheckin(c Checkin) (Checkin, error) {
	switch {
	case c.ID == "":
		return c, missing("id")
	case !ValidID(c.ID):
		return c, fmt.Errorf("protocol: id %q: %w", c.ID, ErrInvalid)
	case c.DeviceID == "":
		return c, missing("deviceId")
	case !ValidDeviceID(c.DeviceID):
		return c, fmt.Errorf("protocol: deviceId: %w", ErrBadDevice)
	case c.Seq <= 0:
		return c, missing("seq")
	case c.ChipNumber == "":
		return c, missing("chipNumber")
	case c.EventID == "":
		return c, missing("eventId")
	case c.TappedAt == "":
		return c, missing("tappedAt")
	}
	if _, err := ParseTime(c.TappedAt); err != nil {
		return c, err
	}
	return c, nil
}

// Result statuses: the UiTPAS check-in outcomes.
const (
	StatusSaved              = "saved"
	StatusMaximumReached     = "maximum-reached"
	StatusCardBlocked        = "card-blocked"
	StatusPassholderNotFound = "passholder-not-found"
	StatusCheckinNotAllowed  = "checkin-not-allowed"
	StatusEventNotFound      = "event-not-found"
	StatusInvalidRequest     = "invalid-request"
)

// KnownStatus reports whether s is one of the contract's Result statuses.
func KnownStatus(s string) bool {
	switch s {
	case StatusSaved, StatusMaximumReached, StatusCardBlocked, StatusPassholderNotFound,
		StatusCheckinNotAllowed, StatusEventNotFound, StatusInvalidRequest:
		return true
	}
	return false
}

// Result is central's one answer to a checkin id.
type Result struct {
	V              int               `json:"v"`
	ID             string            `json:"id"`
	Status         string            `json:"status"`
	NewPoints      int               `json:"newPoints"`
	TotalPoints    int               `json:"totalPoints"`
	EndUserMessage map[string]string `json:"endUserMessage,omitempty"`
}

// DecodeResult parses and validates a Result.
func DecodeResult(b []byte) (Result, error) {
	r, err := decodePlain(b, decodeResultFast)
	if err != nil {
		return Result{}, err
	}
	return validateResult(r)
}

// validateResult checks the fields of a decoded Result.
func validateResult(r Result) (Result, error) {
	switch {
	case r.ID == "":
		return r, missing("id")
	case r.Status == "":
		return r, missing("status")
	case !KnownStatus(r.Status):
		return r, fmt.Errorf("protocol: status %q: %w", r.Status, ErrInvalid)
	}
	return r, nil
}

// Status is the kiosk's retained health report.
type Status struct {
	V              int    `json:"v"`
	Online         bool   `json:"online"`
	DeviceID       string `json:"deviceId"`
	Version        string `json:"version"`
	EventID        string `json:"eventId"`
	Pending        int    `json:"pending"`
	OldestPendingS int64  `json:"oldestPendingS"`
	ClockSynced    bool   `json:"clockSynced"`
	Reader         string `json:"reader"`
	Display        string `json:"display"`
	// Indicator and Storage are optional additions: the buzzer/LED's health
	// ("ok" | "fault"), and the queue's ("ok" | "fault": an unusable queue
	// database was set aside and taps are refused until a technician
	// recovers or resets it).
	Indicator string `json:"indicator,omitempty"`
	Storage   string `json:"storage,omitempty"`
	// Subscribed is an optional addition: the broker granted the kiosk's
	// result and config subscriptions (false: it is deaf to central).
	Subscribed *bool `json:"subscribed,omitempty"`
	// Outcomes, SeqHigh and UptimeS are optional additions: the counts of
	// tap outcomes since the kiosk's queue was created (saved,
	// already-saved, blocked, unreadable-card, no-event, queue-full,
	// storage-error; monotonic, persisted), the highest seq assigned, and
	// how long kioskd has run (seconds; a restart sets it back).
	Outcomes map[string]int64 `json:"outcomes,omitempty"`
	SeqHigh  int64            `json:"seqHigh,omitempty"`
	UptimeS  int64            `json:"uptimeS,omitempty"`
	// ConfigsRejected is an optional addition: how many signed configs the
	// kiosk refused since kioskd started (bad signature, another device's,
	// an old serial).
	ConfigsRejected int64  `json:"configsRejected,omitempty"`
	LastTapAt       string `json:"lastTapAt,omitempty"`
	At              string `json:"at"`
	// CertExpiresInDays is an optional addition: days until the client
	// certificate expires (absent without TLS).
	CertExpiresInDays *int `json:"certExpiresInDays,omitempty"`
}

// Encode returns the wire form.
func (s Status) Encode() []byte { s.V = Version; return encode(s) }

// DecodeStatus parses a Status (or a last will, which has only online and deviceId).
func DecodeStatus(b []byte) (Status, error) {
	var s Status
	if err := decode(b, &s); err != nil {
		return Status{}, err
	}
	if s.DeviceID == "" {
		return s, missing("deviceId")
	}
	return s, nil
}

// Will returns the last-will payload for device.
func Will(device string) []byte {
	return encode(struct {
		V        int    `json:"v"`
		Online   bool   `json:"online"`
		DeviceID string `json:"deviceId"`
	}{Version, false, device})
}
