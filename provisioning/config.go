// Package provisioning holds what makes a kiosk this kiosk: its configuration
// file, its identity (key, pairing code, CSR), the provisioning bundle that
// central issues for it, the signed remote config in force — and central's
// side of the same: the fleet CA, bundles, Mosquitto's configuration.
package provisioning

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/uitpas/tap-kiosk/internal/gpioline"
	"github.com/uitpas/tap-kiosk/protocol"
)

// Config is kioskd's configuration file. Keys and meanings follow
// shared/spec/interfaces.md; more are added here with defaults that suit a
// kiosk at a venue entrance.
type Config struct {
	DeviceID string `toml:"device_id"`
	StateDir string `toml:"state_dir"`
	// TimeZone buckets constraint periods (a "DAY" is a Brussels day).
	TimeZone string `toml:"time_zone"`

	Event   EventConfig   `toml:"event"`
	Tap     TapConfig     `toml:"tap"`
	Reader  ReaderConfig  `toml:"reader"`
	Display DisplayConfig `toml:"display"`
	Control ControlConfig `toml:"control"`
	MQTT    MQTTConfig    `toml:"mqtt"`
	Queue   QueueConfig   `toml:"queue"`
	Log     LogConfig     `toml:"log"`

	// Path is the file the config was read from (for messages).
	Path string `toml:"-"`
}

// EventConfig is the local default event, in force until a signed remote
// config arrives.
type EventConfig struct {
	ID           string   `toml:"id"`
	Title        string   `toml:"title"`
	CounterID    string   `toml:"counter_id"`
	Points       int      `toml:"points"`
	Period       string   `toml:"period"`
	Volume       int      `toml:"volume"`
	ValidFrom    string   `toml:"valid_from"`
	ValidUntil   string   `toml:"valid_until"`
	CheckinCode  string   `toml:"checkin_code"`
	BlockedChips []string `toml:"blocked_chips"`
}

// TapConfig tunes the tap decision and its feedback.
type TapConfig struct {
	// Debounce: the same card again within this window is the same tap.
	Debounce time.Duration `toml:"debounce"`
	// Hold: how long a tap's screen stays before idle returns.
	Hold time.Duration `toml:"hold"`
	// AwaitResult: with the link up, how long after the tap a saved tap
	// may wait for central's Result before its first feedback, so that the
	// passholder sees one answer; 0: show saved at once, as offline.
	AwaitResult time.Duration `toml:"await_result"`
}

// ReaderConfig selects and wires the card reader.
type ReaderConfig struct {
	Driver  string `toml:"driver"` // sim | pn532-spi | pn532-emulated
	SPIDev  string `toml:"spi"`
	SpeedHz int64  `toml:"speed_hz"`
	IRQ     string `toml:"irq"`   // "GPIO25" (a name, searched on every chip), "gpiochip0:25" or "gpiochip0:GPIO25"
	Reset   string `toml:"reset"` // same form
}

// DisplayConfig selects the display output and the buzzer/LED.
type DisplayConfig struct {
	Driver         string        `toml:"driver"` // ssd1306 | terminal | png | none
	Lang           string        `toml:"lang"`   // nl | fr | en
	SpaarcodeEvery time.Duration `toml:"spaarcode_every"`
	Bus            string        `toml:"bus"` // i2c | spi (ssd1306)
	I2CBus         string        `toml:"i2c_bus"`
	I2CAddr        int           `toml:"i2c_addr"`
	SPIDev         string        `toml:"spi"`
	DC             string        `toml:"dc"`
	Width          int           `toml:"width"`
	Height         int           `toml:"height"`
	Rotated        bool          `toml:"rotated"`
	Dir            string        `toml:"dir"`    // png output directory
	Night          string        `toml:"night"`  // "22:00-07:00": dim the panel
	Buzzer         string        `toml:"buzzer"` // "GPIO18", as reader.irq
	LED            string        `toml:"led"`
}

// ControlConfig places the control socket.
type ControlConfig struct {
	Socket string `toml:"socket"`
}

// MQTTConfig is the link to central.
type MQTTConfig struct {
	Broker        string `toml:"broker"`
	TopicPrefix   string `toml:"topic_prefix"`
	AllowInsecure bool   `toml:"allow_insecure"`
	CAFile        string `toml:"ca_file"`
	CertFile      string `toml:"cert_file"`
	KeyFile       string `toml:"key_file"`
	// ConfigKey is central's config-signing public key (base64 Ed25519)
	// for kiosks set up by hand; a provisioning bundle supplies its own.
	ConfigKey  string        `toml:"config_key"`
	Window     int           `toml:"window"`
	RetryAfter time.Duration `toml:"retry_after"`
}

// QueueConfig bounds the outbox: a full queue refuses taps visibly.
type QueueConfig struct {
	MaxBytes     int64 `toml:"max_bytes"`
	MinFreeBytes int64 `toml:"min_free_bytes"`
	// ReserveBytes is a file kept beside the queue and given up when the
	// disk is full, so that the drain always has room; 0: none.
	ReserveBytes int64 `toml:"reserve_bytes"`
}

// LogConfig sets the journal's verbosity.
type LogConfig struct {
	Level string `toml:"level"` // debug | info | warn | error
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		StateDir: "/var/lib/kioskd",
		TimeZone: "Europe/Brussels",
		Event:    EventConfig{Points: 1, Period: protocol.PeriodDay, Volume: 1},
		Tap:      TapConfig{Debounce: 3 * time.Second, Hold: 4 * time.Second, AwaitResult: 300 * time.Millisecond},
		Reader:   ReaderConfig{Driver: "sim", SPIDev: "/dev/spidev0.0", SpeedHz: 1_000_000},
		Display: DisplayConfig{Driver: "none", Lang: "nl", SpaarcodeEvery: 8 * time.Second,
			Bus: "i2c", I2CBus: "/dev/i2c-1", I2CAddr: 0x3c, Width: 128, Height: 64},
		Control: ControlConfig{Socket: "/run/kioskd/control.sock"},
		MQTT:    MQTTConfig{TopicPrefix: protocol.DefaultPrefix, Window: 256, RetryAfter: 30 * time.Second},
		Queue:   QueueConfig{MaxBytes: 256 << 20, MinFreeBytes: 32 << 20, ReserveBytes: 8 << 20},
		Log:     LogConfig{Level: "info"},
	}
}

// ErrConfig marks every configuration error.
var ErrConfig = errors.New("bad configuration")

// KeyError says which key of which file is wrong, and how.
type KeyError struct {
	File, Key, What string
}

func (e *KeyError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.What)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.What)
}

// Unwrap lets callers test errors.Is(err, ErrConfig).
func (e *KeyError) Unwrap() error { return ErrConfig }

// Load reads, defaults and validates the configuration at path. Unknown keys
// are errors: a typo must not silently become a default.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, &KeyError{File: path, What: err.Error()}
	}
	return Parse(path, b)
}

// Parse is Load on bytes already read; name is used in messages.
func Parse(name string, b []byte) (Config, error) {
	c := Default()
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			key := fmt.Sprintf("line %d", pe.Position.Line)
			if pe.LastKey != "" {
				key = pe.LastKey + " (" + key + ")"
			}
			return Config{}, &KeyError{File: name, Key: key, What: pe.Message}
		}
		return Config{}, &KeyError{File: name, What: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Config{}, &KeyError{File: name, Key: und[0].String(), What: "unknown key"}
	}
	c.Path = name
	// A duration must be written as one ("3s"): TOML's bare 3 would decode
	// as 3 ns and pass as a value.
	for _, k := range durationKeys {
		if md.IsDefined(k...) && md.Type(k...) != "String" {
			return Config{}, &KeyError{File: name, Key: strings.Join(k, "."),
				What: fmt.Sprintf("a %s, want a duration in quotes such as \"3s\" or \"500ms\"", strings.ToLower(md.Type(k...)))}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// durationKeys are the keys decoded into time.Duration.
var durationKeys = [][]string{{"tap", "debounce"}, {"tap", "hold"}, {"tap", "await_result"}, {"display", "spaarcode_every"}, {"mqtt", "retry_after"}}

// MinFreeFloor is the least queue.min_free_bytes may be: below it the
// queue's own deletes and checkpoints could not be sure of room (the
// queue's DrainRoom; a test in kiosk keeps the two equal).
const MinFreeFloor = 8 << 20

// Validate checks every key and says which is wrong, before anything opens:
// a key that only hardware would reject at start is checked here too.
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return &KeyError{File: c.Path, Key: key, What: fmt.Sprintf(format, a...)}
	}
	if c.DeviceID == "" {
		return bad("device_id", "missing")
	}
	if !protocol.ValidDeviceID(c.DeviceID) {
		return bad("device_id", "%q must match ^[a-z0-9][a-z0-9-]{2,63}$", c.DeviceID)
	}
	if c.StateDir == "" {
		return bad("state_dir", "missing")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return bad("time_zone", "%q is not a known time zone", c.TimeZone)
	}
	e := c.Event
	// Checked with or without event.id: a remote config may later bring the
	// id, but a wrong value written here is wrong all the same.
	if !protocol.ValidPeriod(e.Period) {
		return bad("event.period", "%q is not one of ABSOLUTE, DAY, WEEK, MONTH, QUARTER, YEAR", e.Period)
	}
	if e.Volume < 1 {
		return bad("event.volume", "%d: must be at least 1", e.Volume)
	}
	if e.Points < 0 || e.Points > 1000 {
		return bad("event.points", "%d: must be 0 to 1000", e.Points)
	}
	for _, k := range []struct{ key, v string }{{"event.valid_from", e.ValidFrom}, {"event.valid_until", e.ValidUntil}} {
		if k.v != "" {
			if _, err := time.Parse(time.RFC3339, k.v); err != nil {
				return bad(k.key, "%q is not an RFC 3339 time such as 2026-11-24T08:00:00Z", k.v)
			}
		}
	}
	for i, chip := range e.BlockedChips {
		if err := protocol.CheckChip(chip); err != nil && !errors.Is(err, protocol.ErrRandomUID) {
			return bad(fmt.Sprintf("event.blocked_chips[%d]", i), "%q is not an upper-case hex chip number of 4, 7 or 10 bytes", chip)
		}
	}
	if c.Tap.Debounce < 0 || c.Tap.Debounce > time.Hour {
		return bad("tap.debounce", "%s: must be between 0s and 1h", c.Tap.Debounce)
	}
	if c.Tap.Hold < 500*time.Millisecond || c.Tap.Hold > time.Minute {
		return bad("tap.hold", "%s: must be between 500ms and 1m", c.Tap.Hold)
	}
	// Longer than 2 s the wait is felt as a kiosk that does not react.
	if c.Tap.AwaitResult < 0 || c.Tap.AwaitResult > 2*time.Second {
		return bad("tap.await_result", "%s: must be between 0s (show saved at once) and 2s", c.Tap.AwaitResult)
	}
	for _, l := range []struct{ key, v string }{{"reader.irq", c.Reader.IRQ}, {"reader.reset", c.Reader.Reset},
		{"display.buzzer", c.Display.Buzzer}, {"display.led", c.Display.LED}, {"display.dc", c.Display.DC}} {
		if l.v == "" {
			continue
		}
		spec, err := gpioline.Parse(l.v)
		if err != nil {
			return bad(l.key, "%q: %v", l.v, errors.Unwrap(err))
		}
		if l.key == "display.dc" && spec.Name == "" {
			return bad(l.key, "%q: the SSD1306's D/C line is given by name, e.g. GPIO27", l.v)
		}
	}
	if c.Display.Buzzer != "" && c.Display.Buzzer == c.Display.LED {
		return bad("display.led", "%q is also display.buzzer", c.Display.LED)
	}
	switch c.Reader.Driver {
	case "sim", "pn532-emulated":
	case "pn532-spi":
		if c.Reader.SPIDev == "" {
			return bad("reader.spi", "missing (e.g. /dev/spidev0.0)")
		}
		if c.Reader.SpeedHz < 10_000 || c.Reader.SpeedHz > 5_000_000 {
			return bad("reader.speed_hz", "%d: the PN532 takes 10 kHz to 5 MHz", c.Reader.SpeedHz)
		}
	default:
		return bad("reader.driver", "%q is not one of sim, pn532-spi, pn532-emulated", c.Reader.Driver)
	}
	d := c.Display
	switch d.Driver {
	case "none", "terminal":
	case "png":
		if d.Dir == "" {
			return bad("display.dir", "missing: the png display writes there")
		}
	case "ssd1306":
		switch d.Bus {
		case "i2c":
			if d.I2CBus == "" {
				return bad("display.i2c_bus", "missing (e.g. /dev/i2c-1)")
			}
			// 7-bit addresses; 0x00-0x02 and 0x78-0x7f are reserved.
			if d.I2CAddr < 0x03 || d.I2CAddr > 0x77 {
				return bad("display.i2c_addr", "%#x: a 7-bit I2C address is 0x03 to 0x77 (the SSD1306 is 0x3c or 0x3d)", d.I2CAddr)
			}
		case "spi":
			if d.SPIDev == "" {
				return bad("display.spi", "missing (e.g. /dev/spidev0.1)")
			}
			if d.DC == "" {
				return bad("display.dc", "missing: the SSD1306 on SPI needs its D/C line (e.g. GPIO27)")
			}
		default:
			return bad("display.bus", "%q is not i2c or spi", d.Bus)
		}
		if d.Width > 128 || d.Height > 64 {
			return bad("display.width", "%dx%d: the SSD1306 is at most 128x64", d.Width, d.Height)
		}
	default:
		return bad("display.driver", "%q is not one of ssd1306, terminal, png, none", d.Driver)
	}
	switch d.Lang {
	case "nl", "fr", "en":
	default:
		return bad("display.lang", "%q is not one of nl, fr, en", d.Lang)
	}
	if d.Width <= 0 || d.Height <= 0 || d.Width%8 != 0 || d.Height%8 != 0 || d.Width > 1024 || d.Height > 1024 {
		return bad("display.width", "%dx%d: both must be multiples of 8, 8 to 1024", d.Width, d.Height)
	}
	// Negative turns the alternation off (the fleet simulator, tests); 0 is
	// refused rather than read as off: it is more likely a slip.
	if d.SpaarcodeEvery >= 0 && (d.SpaarcodeEvery < 2*time.Second || d.SpaarcodeEvery > time.Hour) {
		return bad("display.spaarcode_every", "%s: must be between 2s and 1h (or negative: no spaarcode)", d.SpaarcodeEvery)
	}
	if _, _, err := ParseNight(d.Night); err != nil {
		return bad("display.night", "%q: want HH:MM-HH:MM, e.g. 22:00-07:00", d.Night)
	}
	if c.Control.Socket == "" {
		return bad("control.socket", "missing")
	}
	m := c.MQTT
	switch {
	case m.Broker == "":
		// Not set: the provisioning bundle in state_dir supplies it; until
		// one is applied the kiosk shows its pairing code and stays offline.
	case strings.HasPrefix(m.Broker, "tcp://"):
		if !m.AllowInsecure {
			return bad("mqtt.broker", "%q is plain tcp:// without allow_insecure = true; use ssl:// in production", m.Broker)
		}
	case strings.HasPrefix(m.Broker, "ssl://"), strings.HasPrefix(m.Broker, "tls://"):
	default:
		return bad("mqtt.broker", "%q must start with ssl:// (or tcp:// with allow_insecure)", m.Broker)
	}
	if m.ConfigKey != "" {
		if _, err := ParseConfigKey(m.ConfigKey); err != nil {
			return bad("mqtt.config_key", "not base64 of a 32-byte Ed25519 public key (config.pub of `kioskctl ca init`)")
		}
	}
	if m.TopicPrefix == "" || strings.ContainsAny(m.TopicPrefix, "+#") || strings.HasSuffix(m.TopicPrefix, "/") {
		return bad("mqtt.topic_prefix", "%q: must be non-empty, without + # or a trailing /", m.TopicPrefix)
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		return bad("mqtt.cert_file", "cert_file and key_file go together (this device's certificate and its key)")
	}
	if m.Window < 1 || m.Window > 65535 {
		return bad("mqtt.window", "%d: must be 1 to 65535", m.Window)
	}
	if m.RetryAfter < time.Second {
		return bad("mqtt.retry_after", "%s: must be at least 1s", m.RetryAfter)
	}
	if c.Queue.MaxBytes < 1<<20 {
		return bad("queue.max_bytes", "%d: must be at least 1 MiB", c.Queue.MaxBytes)
	}
	if c.Queue.ReserveBytes < 0 || c.Queue.ReserveBytes > 1<<30 {
		return bad("queue.reserve_bytes", "%d: must be 0 (none) to 1 GiB", c.Queue.ReserveBytes)
	}
	if c.Queue.MinFreeBytes < MinFreeFloor {
		return bad("queue.min_free_bytes", "%d: must be at least %d (8 MiB): the queue needs that room to drain a full disk", c.Queue.MinFreeBytes, MinFreeFloor)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	return nil
}

// ParseNight reads display.night, "22:00-07:00", into the times of day the
// panel dims and brightens again; "" is no night.
func ParseNight(s string) (from, to time.Duration, err error) {
	if s == "" {
		return 0, 0, nil
	}
	bad := fmt.Errorf("provisioning: display.night %q: want HH:MM-HH:MM, e.g. 22:00-07:00", s)
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, bad
	}
	parse := func(hm string) (time.Duration, bool) {
		h, m, ok := strings.Cut(strings.TrimSpace(hm), ":")
		if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
			return 0, false
		}
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return 0, false
		}
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, true
	}
	f, ok1 := parse(a)
	t, ok2 := parse(b)
	if !ok1 || !ok2 || f == t {
		return 0, 0, bad
	}
	return f, t, nil
}

// Location returns the configured time zone (validated by Load).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// QueuePath is where the outbox database lives.
func (c *Config) QueuePath() string { return filepath.Join(c.StateDir, "queue.db") }
