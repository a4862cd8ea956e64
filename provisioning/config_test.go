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
