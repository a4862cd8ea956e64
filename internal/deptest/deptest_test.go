// Package deptest fails the build when a package imports a layer it must
// not: the core knows interfaces, not chips or brokers; reader, display and
// queue know nothing of MQTT.
package deptest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/uitpas/tap-kiosk"

var (
	mqtt     = []string{"github.com/eclipse/paho.mqtt.golang", "github.com/mochi-mqtt/server", mod + "/queue/mqttfwd", mod + "/internal/mqttconn", mod + "/ingest"}
	hardware = []string{"periph.io/x/host", "github.com/warthog618/go-gpiocdev", mod + "/reader/pn532", mod + "/display/oled",
		mod + "/display/signal", mod + "/display/blockterm", mod + "/display/png"}

	// central: the ingest and what grows around it. No kiosk package may
	// need any of it (a kiosk image carries no central code).
	central = []string{mod + "/ingest", mod + "/fleet", mod + "/report", mod + "/centralweb"}
	// kioskSide is what central must not need: the kiosk's own packages.
	kioskSide = []string{mod + "/device", mod + "/queue", mod + "/kiosk", mod + "/reader", mod + "/display"}
)

// rules: packages under the key (prefix) must not depend on any of the values (prefixes).
var rules = map[string][]string{
	// The kiosk knows nothing of central beyond the contract (protocol);
	// nor of the fleet CA's life cycle (inventory, revocation, the renewal
	// signer, which hold or use the CA key): it checks a renewed
	// certificate with provisioning's bundle checks against its pinned CA.
	mod + "/kiosk": append([]string{mod + "/fleetca"}, central...),
	// The fleet CA needs neither central's services nor the kiosk's code.
	mod + "/fleetca": append(append([]string{}, central...), kioskSide...),
	// The fleet registry reads Status; the broker and the ingest's rules
	// are not its business (the ingest feeds it through an interface).
	mod + "/fleet": append(append([]string{mod + "/ingest"}, mqtt...), kioskSide...),
	// Reports and the HTTP side read the ledger and the registry (through
	// ingest, which links paho); they need none of the kiosk's code.
	mod + "/report":     kioskSide,
	mod + "/centralweb": kioskSide,
	mod + "/device":     append(append([]string{mod + "/kiosk"}, mqtt...), hardware...),
	mod + "/reader":     append([]string{mod + "/device", mod + "/queue", mod + "/kiosk"}, mqtt...),
	mod + "/display":    append([]string{mod + "/device", mod + "/queue", mod + "/reader", mod + "/kiosk"}, mqtt...),
	mod + "/protocol":   append([]string{mod + "/device", mod + "/queue", mod + "/kiosk"}, append(mqtt, hardware...)...),
	mod + "/clock":      {mod + "/"},
}

// queue itself (the outbox) must not know MQTT; its mqttfwd subpackage does.
var exceptions = map[string]bool{mod + "/queue/mqttfwd": true, mod + "/queue/mqttfwd/fwdbench": true}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg, deps := f[0], f[1:]
		queueRule := (pkg == mod+"/queue" || strings.HasPrefix(pkg, mod+"/queue/")) && !exceptions[pkg]
		for prefix, banned := range rules {
			if !(pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) {
				continue
			}
			checked++
			check(t, pkg, deps, banned)
		}
		if queueRule {
			checked++
			check(t, pkg, deps, append([]string{mod + "/device", mod + "/kiosk"}, mqtt...))
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked: the rules match nothing", checked)
	}
}

func check(t *testing.T, pkg string, deps, banned []string) {
	t.Helper()
	for _, d := range deps {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, b) && (strings.HasSuffix(b, "/") || len(d) == len(b) || d[len(b)] == '/') {
				t.Errorf("%s depends on %s, which its layer must not", pkg, d)
			}
		}
	}
}
