// Package display turns the core's screen data into what a passholder sees and
// hears. The core hands over a Screen (data, not pixels); outputs render it:
// the terminal for the demo, the SSD1306 OLED on the kiosk, PNG files, or
// nothing. Buzzer and LED patterns go through Indicator.
package display

// Kind is what a screen says.
type Kind string

// Screen kinds. The string values are stable: the control socket reports them.
const (
	Idle          Kind = "idle"           // "Tik je UiTPAS" with the event title
	Saved         Kind = "saved"          // +N punt(en), the total once central tells it
	AlreadySaved  Kind = "already-saved"  // the constraint is used up
	Blocked       Kind = "blocked"        // card on the hot list, or central said card-blocked
	NotRecognised Kind = "not-recognised" // central does not know the card
	Unreadable    Kind = "unreadable"     // random or malformed UID
	NoEvent       Kind = "no-event"       // nothing to save for now
	NotAllowed    Kind = "not-allowed"    // central: outside the check-in window
	QueueFull     Kind = "queue-full"     // storage bound reached: go to the desk
	StorageError  Kind = "storage-error"  // the disk failed: go to the desk
	Fault         Kind = "fault"          // reader fault: go to the desk
	Provisioning  Kind = "provisioning"   // device id and pairing code
	Spaarcode     Kind = "spaarcode"      // the event's checkinCode as a QR code
)

// Screen is the data of one screen. Outputs choose the words from Kind and
// Lang; Message, when set, replaces the standard detail line (central's
// endUserMessage).
type Screen struct {
	Kind       Kind
	Lang       string // "nl" (default), "fr", "en"
	EventTitle string
	Points     int  // points saved by this tap
	Total      int  // the passholder's total, when HasTotal
	HasTotal   bool // central has told the total
	Message    string
	Code       string // checkinCode (spaarcode) or pairing code (provisioning)
	DeviceID   string
	// Page of a screen whose message the output splits into pages to keep
	// it legible (0 first); the core turns them. Out of range: the last.
	Page int
}

// Display shows screens.
type Display interface {
	// Show hands s to the output and returns at once: the tap path never
	// waits for a display bus. A later Show supersedes an earlier one that
	// has not been drawn yet.
	Show(s Screen)
	// Halt blanks the output and releases it.
	Halt() error
	String() string
}

// Pattern is a buzzer/LED signal.
type Pattern int

// Signals, each distinct by ear and by eye.
const (
	SignalSaved Pattern = iota
	SignalAlreadySaved
	SignalRefused
	SignalFault
	SignalIdentify
)

// Indicator drives the buzzer and LED. Signal returns at once.
type Indicator interface {
	Signal(p Pattern)
}

// None is the display and indicator that does nothing.
type None struct{}

// Show does nothing.
func (None) Show(Screen) {}

// Halt does nothing.
func (None) Halt() error { return nil }

// Signal does nothing.
func (None) Signal(Pattern) {}

func (None) String() string { return "none" }
