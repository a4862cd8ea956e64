package provisioning

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const good = `
device_id = "kiosk-bib-geel-01"
state_dir = "/var/lib/kioskd"

[event]
id = "evt-7781"
counter_id = "balie-geel"
points = 1
period = "DAY"
volume = 1

[reader]
driver = "sim"

[display]
driver = "none"

[control]
socket = "/run/kioskd/control.sock"

[mqtt]
broker = "tcp://127.0.0.1:1883"
topic_prefix = "kiosk/v1"
allow_insecure = true
`

func TestParseSpecExample(t *testing.T) {
	c, err := Parse("kioskd.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID != "kiosk-bib-geel-01" || c.Event.Period != "DAY" || c.MQTT.Window != 256 || c.Tap.Debounce != 3*time.Second {
		t.Fatalf("%+v", c)
	}
}

func TestParseErrorsNameKey(t *testing.T) {
	for _, tc := range []struct{ edit, key string }{
		{`period = "DAY"|period = "DAILY"`, "event.period"},
		{`device_id = "kiosk-bib-geel-01"|device_id = "Kiosk/1"`, "device_id"},
		{`allow_insecure = true|allow_insecure = false`, "mqtt.broker"},
		{`driver = "sim"|driver = "acr122"`, "reader.driver"},
		{`volume = 1|volume = 0`, "event.volume"},
		{`[control]|[control]
sockt = "x"`, "control.sockt"},
		{`points = 1|points = "one"`, ""},
		{`[display]
driver = "none"|[display]
driver = "none"
lang = "de"`, "display.lang"},
	} {
		old, repl, _ := strings.Cut(tc.edit, "|")
		_, err := Parse("kioskd.toml", []byte(strings.Replace(good, old, repl, 1)))
		if err == nil {
			t.Errorf("%q accepted", repl)
			continue
		}
		var ke *KeyError
		if !errors.As(err, &ke) || !errors.Is(err, ErrConfig) {
			t.Errorf("%q: error %T %v", repl, err, err)
			continue
		}
		if ke.File != "kioskd.toml" || tc.key != "" && ke.Key != tc.key {
			t.Errorf("%q: got %q, want key %q", repl, err, tc.key)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: multi-line error %q", repl, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/none.toml")
	if err == nil || !strings.Contains(err.Error(), "none.toml") {
		t.Fatalf("%v", err)
	}
}

// Keys that used to pass Validate and failed only when hardware opened, or
// silently meant something else.
func TestValidateEveryKey(t *testing.T) {
	base := strings.Replace(good, "[event]\nid = \"evt-7781\"\n", "[event]\n", 1) // no event.id
	cases := []struct{ section, body, key string }{
		{"tap", "debounce = 3", "tap.debounce"},
		{"tap", "hold = 4000", "tap.hold"},
		{"display", "spaarcode_every = \"0s\"", "display.spaarcode_every"},
		{"display", "night = \"late\"", "display.night"},
		{"display", "night = \"22:00-22:00\"", "display.night"},
		{"display", "buzzer = \"GPIO 18\"", "display.buzzer"},
		{"display", "led = \"23\"", "display.led"},
		{"display", "buzzer = \"GPIO18\"\nled = \"GPIO18\"", "display.led"},
		{"display", "driver = \"ssd1306\"\ni2c_addr = 0x13c", "display.i2c_addr"},
		{"display", "driver = \"ssd1306\"\ni2c_addr = 0", "display.i2c_addr"},
		{"display", "driver = \"ssd1306\"\nbus = \"spi\"\nspi = \"/dev/spidev0.1\"", "display.dc"},
		{"display", "driver = \"ssd1306\"\nwidth = 256", "display.width"},
		{"reader", "irq = \"25\"", "reader.irq"},
		{"reader", "reset = \"gpiochip0:\"", "reader.reset"},
		{"event", "period = \"DAILY\"", "event.period"},
		{"event", "volume = 0", "event.volume"},
		{"queue", "min_free_bytes = 0", "queue.min_free_bytes"},
		{"queue", "min_free_bytes = 4194304", "queue.min_free_bytes"},
		{"queue", "reserve_bytes = -1", "queue.reserve_bytes"},
		{"mqtt", "retry_after = 30", "mqtt.retry_after"},
		{"mqtt", "cert_file = \"/etc/kioskd/me.crt\"", "mqtt.cert_file"},
	}
	for _, tc := range cases {
		doc := addToSection(base, tc.section, tc.body)
		_, err := Parse("kioskd.toml", []byte(doc))
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("[%s] %s: got %v, want an error naming %s", tc.section, tc.body, err, tc.key)
		}
	}
	// And what is right passes, names included.
	ok := addToSection(addToSection(base, "display", "night = \"22:00-07:00\"\nbuzzer = \"GPIO18\"\nled = \"gpiochip0:23\""),
		"reader", "irq = \"GPIO25\"\nreset = \"gpiochip4:GPIO24\"")
	if _, err := Parse("kioskd.toml", []byte(ok)); err != nil {
		t.Fatal(err)
	}
}

// addToSection puts body at the start of [section], adding the section when
// the document has none; a key already there is replaced.
func addToSection(doc, section, body string) string {
	head := "[" + section + "]\n"
	i := strings.Index(doc, head)
	if i < 0 {
		return doc + "\n" + head + body + "\n"
	}
	rest := doc[i+len(head):]
	for _, line := range strings.Split(body, "\n") {
		k, _, _ := strings.Cut(line, "=")
		var kept []string
		for _, l := range strings.Split(rest, "\n") {
			if strings.HasPrefix(l, "[") {
				kept = append(kept, l)
				continue
			}
			if lk, _, ok := strings.Cut(l, "="); ok && strings.TrimSpace(lk) == strings.TrimSpace(k) {
				continue
			}
			kept = append(kept, l)
		}
		rest = strings.Join(kept, "\n")
	}
	return doc[:i] + head + body + "\n" + rest
}

func TestParseNight(t *testing.T) {
	f, to, err := ParseNight("22:30-07:00")
	if err != nil || f != 22*time.Hour+30*time.Minute || to != 7*time.Hour {
		t.Fatalf("%v %v %v", f, to, err)
	}
	for _, s := range []string{"late", "22-07", "24:00-07:00", "22:00-7:0", "22:00-"} {
		if _, _, err := ParseNight(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
