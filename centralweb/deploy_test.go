package centralweb

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/protocol"
)

// The shipped monitoring (deploy/) is tested here, against this package's
// metrics: the alert rules with promtool's own unit tests, the scrape
// configuration, and that every metric the rules and the dashboard name is
// one /metrics exports.

const deployDir = "../deploy"

// tool finds a program of Debian's prometheus package: without it the test
// skips, saying so, or fails under CI=true (.ci/run installs it).
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (apt-get install prometheus); CI must run this test", name)
	}
	t.Skipf("%s is not installed (Debian: apt-get install prometheus): skipping", name)
	return ""
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDeployPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	dir := filepath.Join(deployDir, "prometheus")
	run(t, dir, promtool, "check", "rules", "kiosk-alerts.yml")
	out := run(t, dir, promtool, "test", "rules", "kiosk-alerts.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
	run(t, dir, promtool, "check", "config", "prometheus.yml")
}

// exported scrapes a server that has a kiosk with every field, and returns
// the exposition and the names of its samples (histograms' _bucket, _sum and
// _count included).
func exported(t *testing.T) (string, map[string]bool) {
	t.Helper()
	e := newEnv(t, func(o *Opts) { o.Feeder = &fakeFeeder{} })
	s := healthy("kiosk-a-01")
	s.Pending, s.OldestPendingS, s.V, s.At = 2, 30, protocol.Version, protocol.FormatTime(e.clk.Now())
	var raw map[string]any
	json.Unmarshal(s.Encode(), &raw)
	raw["configsRejected"] = 1
	b, _ := json.Marshal(raw)
	if _, err := e.reg.Apply(t.Context(), []fleet.Message{{Status: s, Raw: b, ReceivedAt: e.clk.Now()}}, nil); err != nil {
		t.Fatal(err)
	}
	e.srv.o.Batches.Observe(3, time.Millisecond)
	m := e.metrics()
	names := map[string]bool{}
	for _, line := range strings.Split(m, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return m, names
}

var metricName = regexp.MustCompile(`\bkiosk_[a-z_]+[a-z]\b`)

func TestDeployFilesNameExportedMetrics(t *testing.T) {
	_, names := exported(t)
	for _, f := range []string{"prometheus/kiosk-alerts.yml", "prometheus/kiosk-alerts.test.yml", "grafana/fleet.json"} {
		b, err := os.ReadFile(filepath.Join(deployDir, f))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, n := range metricName.FindAllString(string(b), -1) {
			if strings.HasPrefix(n, "kiosk_fleet") && n != "kiosk_fleet_kiosks" && n != "kiosk_fleet_registry_up" {
				continue // the dashboard's uid and the rule group's name
			}
			seen[n] = true
		}
		var missing []string
		for n := range seen {
			if !names[n] {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s names metrics /metrics does not export: %v", f, missing)
		}
		if len(seen) < 5 {
			t.Errorf("%s: only %d metric names found", f, len(seen))
		}
	}
}

func TestDeployGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana/fleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs []struct{ Name, Type, PluginID string } `json:"__inputs"`
		Title  string
		UID    string
		Panels []struct {
			Title      string
			Datasource struct{ Type, UID string }
			Targets    []struct {
				Expr       string
				Datasource struct{ UID string }
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("fleet.json: %v", err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs: %+v; want the one DS_PROMETHEUS data source input", d.Inputs)
	}
	want := map[string]bool{"Kiosks by state": false, "Taps per hour by outcome (kiosk)": false, "Pending and drain": false, "Alerts firing": false}
	for _, p := range d.Panels {
		if _, ok := want[p.Title]; ok {
			want[p.Title] = true
		}
		if p.Datasource.UID != "${DS_PROMETHEUS}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			if q.Expr == "" || q.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: a query without expr or data source", p.Title)
			}
		}
	}
	for title, ok := range want {
		if !ok {
			t.Errorf("no panel %q", title)
		}
	}
}

// The exposition passes promtool's lint (names, units, counters' _total).
func TestMetricsPassPromtoolLint(t *testing.T) {
	promtool := tool(t, "promtool")
	m, _ := exported(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(m)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
