package e2e

// Central's view of a kiosk killed mid-service: kiosk-ingest -http feeds a
// real Prometheus (Debian's package), and its fleet page is read in a real
// headless Chromium (Debian's package, driven by chromedp). Without either
// program the test says so and skips; under CI=true it fails instead
// (.ci/run installs both).

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
)

// need returns the path of a program of a Debian package, or skips (fails
// under CI=true) without it.
func need(t *testing.T, pkg string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (apt-get install %s); CI must run this test", paths[0], pkg)
	}
	t.Skipf("%s is not installed (Debian: apt-get install %s): skipping", paths[0], pkg)
	return ""
}

// startIngestHTTP starts kiosk-ingest with -http on a free loopback port and
// returns its base URL once it answers.
func (w *world) startIngestHTTP() string {
	w.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(w.t))
	w.ingest = start(w.t, "kiosk-ingest", filepath.Join(w.dir, "ingest.log"),
		"-broker", w.broker.URL(), "-db", w.ledger, "-enroll-unknown", "-http", addr)
	base := "http://" + addr
	w.waitFor("kiosk-ingest -http answering", 20*time.Second, func() bool {
		if w.ingest.exited() {
			w.t.Fatalf("kiosk-ingest exited:\n%s", w.ingest.logText())
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// promQuery asks Prometheus's HTTP API for an instant vector and returns
// the value of its one sample ("" when there is none).
func promQuery(base, q string) (string, error) {
	body, err := get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return "", err
	}
	var r struct {
		Status string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return "", fmt.Errorf("%s: %w", body, err)
	}
	if r.Status != "success" || len(r.Data.Result) == 0 {
		return "", nil
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v, nil
}

// TestKilledKioskOfflineInPrometheus: a kiosk serves, its kioskd is killed
// (SIGKILL: the broker publishes its last will), and the fleet command and a
// real Prometheus scraping kiosk-ingest's /metrics both say it is offline.
func TestKilledKioskOfflineInPrometheus(t *testing.T) {
	promBin := need(t, "prometheus", "/usr/bin/prometheus", "prometheus")
	w := newWorld(t)
	base := w.startIngestHTTP()
	w.startKiosk()
	w.mustTap(chip(1), "saved")
	w.waitFor("queue drained", 20*time.Second, func() bool { return w.pending() == 0 })

	dir := t.TempDir()
	port := testbroker.FreePort(t)
	rules, err := filepath.Abs("../../deploy/prometheus/kiosk-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: kiosk-ingest
    static_configs:
      - targets: [%q]
`, rules, strings.TrimPrefix(base, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	prom.Stdout, prom.Stderr = logf, logf
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { prom.Wait(); close(exited) }()
	t.Cleanup(func() {
		prom.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			prom.Process.Kill()
			<-exited
		}
	})
	pbase := fmt.Sprintf("http://127.0.0.1:%d", port)
	promLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log")); return string(b) }
	sel := fmt.Sprintf(`kiosk_online{device=%q}`, w.device)
	waitfor.Cond(t, "Prometheus has scraped the kiosk online", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", promLog())
		default:
		}
		v, _ := promQuery(pbase, sel)
		return v == "1"
	})
	if v, err := promQuery(pbase, `up{job="kiosk-ingest"}`); v != "1" {
		t.Fatalf("up = %q (%v)", v, err)
	}
	if v, err := promQuery(pbase, `kiosk_ingest_results_total{status="saved"}`); v != "1" {
		t.Fatalf("results saved = %q (%v)", v, err)
	}

	w.kioskd.stop(syscall.SIGKILL)
	waitfor.Cond(t, "Prometheus has the kiosk offline", func() bool {
		v, _ := promQuery(pbase, sel)
		return v == "0"
	})
	if v, err := promQuery(pbase, `kiosk_fleet_kiosks{state="offline"}`); v != "1" {
		t.Errorf("kiosk_fleet_kiosks offline = %q (%v)", v, err)
	}
	// The rules loaded; none fires after seconds offline (10 min needed).
	if body, err := get(pbase + "/api/v1/rules"); err != nil || !strings.Contains(body, `"name":"KioskOffline"`) {
		t.Errorf("rules not loaded: %v\n%s", err, body)
	}
	out, err := exec.Command(filepath.Join(binDir, "kiosk-ingest"), "fleet", "-db", w.ledger, "-json").Output()
	if err != nil {
		t.Fatalf("kiosk-ingest fleet: %v", err)
	}
	var line struct{ DeviceID, State string }
	if err := json.Unmarshal(out, &line); err != nil || line.DeviceID != w.device || line.State != "offline" {
		t.Errorf("fleet: %s (%v)", out, err)
	}

	// A rule fires on real metrics: a kiosk reports its queue set aside
	// (KioskStorageFault has no `for`).
	c := paho.NewClient(paho.NewClientOptions().AddBroker(w.broker.URL()).SetClientID("kiosk-e2e-storage"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	st := fmt.Sprintf(`{"v":1,"online":true,"deviceId":"kiosk-e2e-storage","version":"dev","eventId":"evt-e2e","pending":0,"oldestPendingS":0,`+
		`"clockSynced":true,"reader":"ok","display":"ok","storage":"fault","at":%q}`, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	if tok := c.Publish("kiosk/v1/kiosk-e2e-storage/status", 1, true, st); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitfor.Cond(t, "KioskStorageFault firing in Prometheus", func() bool {
		v, _ := promQuery(pbase, `ALERTS{alertname="KioskStorageFault",alertstate="firing",device="kiosk-e2e-storage"}`)
		return v == "1"
	})
}

// TestFleetPageInChromium: the fleet page in a real headless Chromium shows
// the kiosk online, then offline once its kioskd was killed; the kiosk's
// page shows the last will in its history; a CSV download from /reports
// holds the taps booked; no page shows a chip number.
func TestFleetPageInChromium(t *testing.T) {
	chromium := need(t, "chromium", "/usr/bin/chromium", "chromium")
	w := newWorld(t)
	base := w.startIngestHTTP()
	w.startKiosk()
	chips := []string{chip(1), chip(2), chip(3)}
	for _, c := range chips {
		w.mustTap(c, "saved")
	}
	w.waitFor("queue drained", 20*time.Second, func() bool { return w.pending() == 0 })

	downloads := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first call starts the browser and must have no deadline (it
	// would stop the browser); each later step gets its own.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	within := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 30*time.Second) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := within()
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		sctx, scancel := within()
		defer scancel()
		v, err := chromedp.Run(sctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	noChips := func(page, text string) {
		t.Helper()
		for _, c := range chips {
			if strings.Contains(text, c) {
				t.Errorf("%s shows chip %s", page, c)
			}
		}
	}
	stateSel := chromedp.CSS(fmt.Sprintf(`#kiosk-%s [data-state]`, w.device))
	state := func() string {
		sctx, scancel := within()
		defer scancel()
		if err := chromedp.Do(sctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(stateSel)); err != nil {
			t.Log(err)
			return ""
		}
		v, err := chromedp.Run(sctx, chromedp.AttributeValue(stateSel, "data-state"))
		if err != nil {
			t.Log(err)
		}
		return v.Value
	}
	waitfor.Cond(t, "the fleet page shows the kiosk online", func() bool { return state() == "online" })
	noChips("/", text("fleet page", chromedp.OuterHTML(chromedp.CSS("html"))))

	w.kioskd.stop(syscall.SIGKILL) // the broker publishes the last will
	waitfor.Cond(t, "the fleet page shows the kiosk offline", func() bool { return state() == "offline" })
	if n := text("offline count", chromedp.Text(chromedp.CSS("#count-offline"))); n != "1" {
		t.Errorf("offline count %q", n)
	}
	shot(t, ctx, "fleet")

	do("kiosk page", chromedp.Navigate(base+"/kiosk/"+w.device), chromedp.WaitVisible(chromedp.CSS("#history")))
	kstate, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#state"), "data-state"))
	if err != nil {
		t.Fatal(err)
	}
	history := text("history", chromedp.Text(chromedp.CSS("#history")))
	if kstate.Value != "offline" || !strings.Contains(history, "last will") || !strings.Contains(history, "online") {
		t.Errorf("kiosk page: state %q, history %q", kstate.Value, history)
	}
	saved := text("taps today", chromedp.Text(chromedp.CSS(`#today tr:nth-child(2) td`)))
	if saved != "3" {
		t.Errorf("taps today, saved: %q", saved)
	}
	noChips("/kiosk/D", text("kiosk page", chromedp.OuterHTML(chromedp.CSS("html"))))
	shot(t, ctx, "kiosk")

	day := time.Now().In(mustZone(t)).Format("2006-01-02")
	do("reports page", chromedp.Navigate(base+"/reports?by=device&from="+day+"&to="+day), chromedp.WaitVisible(chromedp.CSS("#report")))
	noChips("/reports", text("reports page", chromedp.OuterHTML(chromedp.CSS("html"))))
	shot(t, ctx, "reports")
	// The file appears (and may be empty) before Chromium has written it:
	// the download counts as done on its "completed" event.
	completed := make(chan string, 1)
	if err := chromedp.ListenBrowser(ctx, func(ev any) {
		if p, ok := ev.(*browser.EventDownloadProgress); ok && p.State == browser.DownloadProgressStateCompleted {
			select {
			case completed <- p.FilePath:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	events := true
	do("download the CSV",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: &events})
			return err
		}),
		chromedp.Click(chromedp.CSS("#csv"), chromedp.NodeVisible))
	select {
	case <-completed:
	case <-time.After(30 * time.Second):
		t.Fatal("the CSV download did not complete")
	}
	m, _ := filepath.Glob(filepath.Join(downloads, "*.csv"))
	if len(m) != 1 {
		t.Fatalf("downloaded %q, want one CSV", m)
	}
	csvPath := m[0]
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV %s: %v %q", filepath.Base(csvPath), err, rows)
	}
	got := map[string]string{}
	for i, c := range rows[0] {
		got[c] = rows[1][i]
	}
	if got["deviceId"] != w.device || got["checkins"] != "3" || got["saved"] != "3" || got["points"] != "3" || got["passholders"] != "3" {
		t.Errorf("CSV %s row: %v", filepath.Base(csvPath), got)
	}
	b, _ := os.ReadFile(csvPath)
	noChips("the CSV", string(b))
}

func mustZone(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// shot saves a full-page screenshot in the test's directory, and in
// KIOSK_SCREENSHOTS when set (to look at).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("KIOSK_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}
