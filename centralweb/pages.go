package centralweb

import (
	"bytes"
	"context"
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/report"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// pages renders the fleet pages.
type pages struct {
	s    *Server
	tmpl map[string]*template.Template
}

func newPages(s *Server) (*pages, error) {
	p := &pages{s: s, tmpl: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"when": p.when,
		"day":  func(t time.Time) string { return t.In(s.o.Location).Format("Mon 2 Jan 2006") },
		"ago":  p.ago,
		"dur":  func(sec int64) string { return fleet.Round(time.Duration(sec) * time.Second).String() },
		"pct":  func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + " %" },
		"path": url.PathEscape,
	}
	for _, name := range []string{"index", "kiosk", "reports", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("centralweb: templates: %w", err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

func (p *pages) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.index)
	mux.HandleFunc("GET /kiosk/{id}", p.kiosk)
	mux.HandleFunc("GET /reports", p.reports)
	mux.HandleFunc("GET /reports.csv", p.reportCSV)
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		p.fail(w, http.StatusNotFound, "No such page: "+r.URL.Path)
	})
}

// when formats an instant for people, in the configured zone.
func (p *pages) when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(p.s.o.Location).Format("Mon 2 Jan 2006, 15:04:05")
}

// ago says how long before now t was.
func (p *pages) ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := p.s.o.Clock.Now().Sub(t)
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min ago", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
	}
}

// base is what every page shows.
type base struct {
	Title, Zone, Now, Version string
	Nav                       string
}

func (p *pages) base(title, nav string) base {
	now := p.s.o.Clock.Now().In(p.s.o.Location)
	return base{Title: title, Nav: nav, Zone: p.s.o.Location.String() + " (" + now.Format("MST") + ")",
		Now: now.Format("Mon 2 Jan 2006, 15:04:05"), Version: p.s.o.Version}
}

func (p *pages) render(w http.ResponseWriter, name string, code int, data any) {
	var b bytes.Buffer
	if err := p.tmpl[name].Execute(&b, data); err != nil {
		p.s.log.Error("page render failed", "page", name, "err", err)
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

type errorPage struct {
	base
	Message string
}

func (p *pages) fail(w http.ResponseWriter, code int, msg string) {
	p.render(w, "error", code, errorPage{base: p.base(http.StatusText(code), ""), Message: msg})
}

// kioskRow is one kiosk in the fleet table.
type kioskRow struct {
	ID, State        string
	Since, LastSeen  time.Time
	Pending          int
	OldestPendingS   int64
	Version, EventID string
	HasStatus        bool
	Alerts           []fleet.Alert
	LastTap          time.Time
}

type indexPage struct {
	base
	RegistryOff  bool
	Err          string
	Kiosks       []kioskRow
	Online       int
	Offline      int
	Unknown      int
	WithAlerts   int
	FleetVersion string
}

func (p *pages) index(w http.ResponseWriter, r *http.Request) {
	data := indexPage{base: p.base("Kiosks", "fleet"), RegistryOff: p.s.o.Registry == nil}
	snap := p.s.snapshotNow(r.Context())
	if snap.err != nil {
		data.Err = "The fleet registry could not be read; the list may be incomplete."
	}
	now := p.s.o.Clock.Now()
	data.FleetVersion = snap.fleetVersion
	for _, d := range snap.devices {
		row := kioskRow{ID: d.ID, State: d.State, Since: d.Since, LastSeen: d.LastSeen, HasStatus: d.HasStatus(),
			Pending: d.Status.Pending, Version: d.Status.Version, EventID: d.Status.EventID,
			Alerts: fleet.DeviceAlerts(d, now, *p.s.o.Thresholds, snap.fleetVersion)}
		if d.Status.Pending > 0 {
			row.OldestPendingS = d.Status.OldestPendingS + int64(max(now.Sub(d.StatusReceived), 0)/time.Second)
		}
		if t, ok := parseTime(d.Status.LastTapAt); ok {
			row.LastTap = t
		}
		switch d.State {
		case fleet.StateOnline:
			data.Online++
		case fleet.StateOffline:
			data.Offline++
		default:
			data.Unknown++
		}
		if len(row.Alerts) > 0 {
			data.WithAlerts++
		}
		data.Kiosks = append(data.Kiosks, row)
	}
	// Kiosks with alerts first, then by id: what needs a look is on top.
	sort.SliceStable(data.Kiosks, func(i, j int) bool {
		return len(data.Kiosks[i].Alerts) > 0 && len(data.Kiosks[j].Alerts) == 0
	})
	p.render(w, "index", http.StatusOK, data)
}

type field struct{ Name, Value string }

type transition struct {
	At     time.Time
	State  string
	Cause  string
	Lasted string
}

type kioskPage struct {
	base
	Kiosk       kioskRow
	Fields      []field
	History     []transition
	HistoryMore int
	Avail24h    string
	Avail7d     string
	Today       string
	TodayErr    string
	TodayRows   []field
	KioskCounts []field
	// Assignments are what central assigned the kiosk, newest first
	// (AssignErr when they could not be read); AssignNote says when the
	// kiosk runs another event than the latest.
	Assignments []assignmentRow
	AssignErr   string
	AssignNote  string
	StatusAt    time.Time
	StatusRecv  time.Time
}

func (p *pages) kiosk(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if p.s.o.Registry == nil {
		p.fail(w, http.StatusNotFound, "The fleet registry is off (kiosk-ingest -fleet=false).")
		return
	}
	if !protocol.ValidDeviceID(id) {
		p.fail(w, http.StatusNotFound, "No kiosk is called that.")
		return
	}
	ctx := r.Context()
	d, err := p.s.o.Registry.Device(ctx, id)
	if errors.Is(err, fleet.ErrNotFound) {
		p.fail(w, http.StatusNotFound, "Central has not heard of kiosk "+id+".")
		return
	}
	if err != nil {
		p.s.log.Warn("kiosk page: registry", "device", id, "err", err)
		p.fail(w, http.StatusServiceUnavailable, "The fleet registry could not be read. Try again in a moment.")
		return
	}
	now := p.s.o.Clock.Now()
	snap := p.s.snapshotNow(ctx)
	st := d.Status
	data := kioskPage{base: p.base("Kiosk "+id, "fleet"), StatusAt: d.StatusAt, StatusRecv: d.StatusReceived}
	data.Kiosk = kioskRow{ID: d.ID, State: d.State, Since: d.Since, LastSeen: d.LastSeen, HasStatus: d.HasStatus(),
		Pending: st.Pending, Version: st.Version, EventID: st.EventID,
		Alerts: fleet.DeviceAlerts(d, now, *p.s.o.Thresholds, snap.fleetVersion)}
	if d.HasStatus() {
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return "no"
		}
		add := func(name, v string) {
			if v != "" {
				data.Fields = append(data.Fields, field{name, v})
			}
		}
		add("Version", st.Version)
		add("Event", st.EventID)
		add("Pending checkins", strconv.Itoa(st.Pending))
		if st.Pending > 0 {
			add("Oldest pending (at the Status)", fleet.Round(time.Duration(st.OldestPendingS)*time.Second).String())
		}
		add("Clock synchronised", yes(st.ClockSynced))
		add("Reader", st.Reader)
		add("Display", st.Display)
		add("Buzzer and LED", st.Indicator)
		add("Storage", st.Storage)
		if st.Subscribed != nil {
			add("Subscribed to results and configs", yes(*st.Subscribed))
		}
		if t, ok := parseTime(st.LastTapAt); ok {
			add("Last tap", p.when(t)+" ("+p.ago(t)+")")
		}
		if st.CertExpiresInDays != nil {
			add("Certificate expires in", strconv.Itoa(*st.CertExpiresInDays)+" days (at the Status)")
		}
		if r := d.Extra.ConfigsRejected; r != nil {
			add("Configs rejected", strconv.FormatInt(*r, 10))
		}
		up := st.UptimeS
		if up == 0 && d.Extra.UptimeS != nil {
			up = *d.Extra.UptimeS
		}
		if up > 0 {
			add("kioskd running for (at the Status)", fleet.Round(time.Duration(up)*time.Second).String())
		}
		outs := st.Outcomes
		if outs == nil {
			outs = d.Extra.Outcomes
		}
		for _, o := range sortedKeys(outs) {
			data.KioskCounts = append(data.KioskCounts, field{o, strconv.FormatInt(outs[o], 10)})
		}
	}
	add := func(name, v string) {
		if v != "" {
			data.Fields = append(data.Fields, field{name, v})
		}
	}
	add("First seen", p.when(d.FirstSeen))
	if !d.LastCheckin.IsZero() {
		add("Last checkin booked", p.when(d.LastCheckin)+" ("+p.ago(d.LastCheckin)+")")
	}

	p.assignments(ctx, &data, id, st.EventID, d.HasStatus())

	ts, err := p.s.o.Registry.Transitions(ctx, id)
	if err != nil {
		p.s.log.Warn("kiosk page: transitions", "device", id, "err", err)
	}
	if share, ok := fleet.Availability(ts, now.Add(-24*time.Hour), now); ok {
		data.Avail24h = strconv.FormatFloat(100*share, 'f', 1, 64) + " %"
	}
	if share, ok := fleet.Availability(ts, now.Add(-7*24*time.Hour), now); ok {
		data.Avail7d = strconv.FormatFloat(100*share, 'f', 1, 64) + " %"
	}
	const keep = 50
	for i := len(ts) - 1; i >= 0 && len(data.History) < keep; i-- {
		end := now
		if i+1 < len(ts) {
			end = ts[i+1].At
		}
		state := fleet.StateOffline
		if ts[i].Online {
			state = fleet.StateOnline
		}
		cause := "Status"
		if ts[i].Cause == fleet.CauseWill {
			cause = "last will (connection lost)"
		}
		data.History = append(data.History, transition{At: ts[i].At, State: state, Cause: cause, Lasted: fleet.Round(max(end.Sub(ts[i].At), 0)).String()})
	}
	data.HistoryMore = max(len(ts)-keep, 0)

	today := report.DateOf(now.In(p.s.o.Location))
	data.Today = today.Start(p.s.o.Location).Format("Monday 2 January 2006")
	if p.s.report == nil {
		data.TodayErr = "No ledger: taps are not counted here."
	} else if t, err := p.s.report.Run(ctx, report.Query{By: report.ByDevice, From: today, To: today, Location: p.s.o.Location, Local: p.local()}); err != nil {
		p.s.log.Warn("kiosk page: report", "device", id, "err", err)
		data.TodayErr = "The ledger could not be read."
	} else {
		for _, row := range t.Rows {
			if row.Key.DeviceID != id {
				continue
			}
			data.TodayRows = append(data.TodayRows, field{"checkins answered", strconv.FormatInt(row.Checkins, 10)},
				field{"saved", strconv.FormatInt(row.Saved, 10)}, field{"points", strconv.FormatInt(row.Points, 10)})
			for _, rs := range report.Refusals() {
				data.TodayRows = append(data.TodayRows, field{rs, strconv.FormatInt(row.Refused[rs], 10)})
			}
		}
	}
	p.render(w, "kiosk", http.StatusOK, data)
}

type reportsPage struct {
	base
	By, From, To, Quarter string
	Bys                   []string
	Err                   string
	Caption               string
	Columns               []cell
	Rows                  [][]cell
	CSV                   string
}

// cell is one figure of a report; numbers are aligned right.
type cell struct {
	V   string
	Num bool
}

// query reads a report query from the URL; the form's defaults are this
// month by counter.
func (p *pages) query(v url.Values) (report.Query, reportsPage, error) {
	now := p.s.o.Clock.Now().In(p.s.o.Location)
	data := reportsPage{base: p.base("Reports", "reports"), By: v.Get("by"), From: v.Get("from"), To: v.Get("to"), Quarter: v.Get("quarter"),
		Bys: []string{string(report.ByCounter), string(report.ByEvent), string(report.ByDevice), string(report.ByDay)}}
	if data.By == "" {
		data.By = string(report.ByCounter)
	}
	if data.From == "" && data.To == "" && data.Quarter == "" && !v.Has("from") {
		data.From = report.DateOf(time.Date(now.Year(), now.Month(), 1, 12, 0, 0, 0, p.s.o.Location)).String()
		data.To = report.DateOf(now).String()
	}
	q := report.Query{Location: p.s.o.Location, Local: p.local()}
	var err error
	if q.By, err = report.ParseBy(data.By); err != nil {
		return q, data, fmt.Errorf("grouping %q: choose counter, event, device or day", data.By)
	}
	if data.Quarter != "" {
		if q.Quarter, err = report.ParseQuarter(data.Quarter); err != nil {
			return q, data, fmt.Errorf("quarter %q: write it as 2026Q4", data.Quarter)
		}
		if q.By == report.ByCounter || q.By == report.ByEvent {
			q.By = report.ByCounterEvent // the settlement export
		}
		data.From, data.To = "", ""
		return q, data, nil
	}
	if data.From != "" {
		if q.From, err = report.ParseDate(data.From); err != nil {
			return q, data, fmt.Errorf("from %q: write a date as 2026-12-01", data.From)
		}
	}
	if data.To != "" {
		if q.To, err = report.ParseDate(data.To); err != nil {
			return q, data, fmt.Errorf("to %q: write a date as 2026-12-01", data.To)
		}
	}
	return q, data, nil
}

func (p *pages) reports(w http.ResponseWriter, r *http.Request) {
	q, data, err := p.query(r.URL.Query())
	code := http.StatusOK
	switch {
	case err != nil:
		data.Err, code = "Cannot run this report: "+err.Error()+".", http.StatusBadRequest
	case p.s.report == nil:
		data.Err = "No ledger: reports are not available here."
	default:
		cols, rows, caption, err := p.table(r.Context(), q)
		if err != nil {
			data.Err, code = "Cannot run this report: "+err.Error()+".", http.StatusBadRequest
			break
		}
		data.Caption = caption
		for _, r := range rows {
			cs := make([]cell, len(r))
			for i, v := range r {
				_, err := strconv.ParseInt(v, 10, 64)
				cs[i] = cell{V: v, Num: err == nil}
			}
			data.Rows = append(data.Rows, cs)
		}
		for i, c := range cols {
			data.Columns = append(data.Columns, cell{V: c, Num: len(data.Rows) > 0 && data.Rows[0][i].Num})
		}
		v := url.Values{"by": {data.By}}
		for k, s := range map[string]string{"from": data.From, "to": data.To, "quarter": data.Quarter} {
			if s != "" {
				v.Set(k, s)
			}
		}
		data.CSV = "/reports.csv?" + v.Encode()
	}
	p.render(w, "reports", code, data)
}

// table runs q and returns it as the CSV's cells, so the page and the
// download show the same figures.
func (p *pages) table(ctx context.Context, q report.Query) (cols []string, rows [][]string, caption string, err error) {
	t, err := p.s.report.Run(ctx, q)
	if err != nil {
		if errors.Is(err, report.ErrInvalid) {
			return nil, nil, "", errors.New(strings.TrimPrefix(err.Error(), "report: "))
		}
		p.s.log.Warn("reports page", "err", err)
		return nil, nil, "", errors.New("the ledger could not be read")
	}
	var b bytes.Buffer
	if err := t.WriteCSV(&b); err != nil {
		return nil, nil, "", err
	}
	all, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(all) == 0 {
		return nil, nil, "", errors.New("the report could not be laid out")
	}
	caption = "By " + string(t.Query.By)
	switch {
	case !t.Query.Quarter.IsZero():
		caption += ", quarter " + t.Query.Quarter.String()
	case !t.Query.From.IsZero() && !t.Query.To.IsZero():
		caption += ", " + t.Query.From.String() + " to " + t.Query.To.String()
	case !t.Query.From.IsZero():
		caption += ", from " + t.Query.From.String()
	case !t.Query.To.IsZero():
		caption += ", up to " + t.Query.To.String()
	}
	caption += ", days in " + t.Query.Location.String()
	return all[0], all[1:], caption, nil
}

func (p *pages) reportCSV(w http.ResponseWriter, r *http.Request) {
	q, data, err := p.query(r.URL.Query())
	if err != nil {
		http.Error(w, "report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if p.s.report == nil {
		http.Error(w, "report: no ledger", http.StatusNotFound)
		return
	}
	t, err := p.s.report.Run(r.Context(), q)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, report.ErrInvalid) {
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	var b bytes.Buffer
	if err := t.WriteCSV(&b); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	name := "kiosk-report-by-" + strings.ReplaceAll(string(t.Query.By), ",", "-")
	switch {
	case data.Quarter != "":
		name += "-" + t.Query.Quarter.String()
	default:
		if data.From != "" {
			name += "-from-" + data.From
		}
		if data.To != "" {
			name += "-to-" + data.To
		}
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := protocol.ParseTime(s)
	return t, err == nil
}

// local is the kiosk-local refusals' source (the fleet registry's outcome
// history), nil without a registry.
func (p *pages) local() report.LocalSource {
	if p.s.o.Registry == nil || p.s.o.Ledger == nil {
		return nil
	}
	return report.FleetLocal{Registry: p.s.o.Registry, Ledger: p.s.o.Ledger}
}

// assignmentRow is one of a kiosk's assignments.
type assignmentRow struct {
	Serial               int64
	Event, Counter, Rule string
	Points               int
	Issued               time.Time
	InForce              bool      // the ledger books a tap of now by it (also during a handover)
	Replaced             time.Time // zero while it is the latest
}

// assignments fills the kiosk page's assignments (the latest few), and a
// note when the kiosk's Status names another event than the latest one:
// the kiosk has not taken the push yet (offline, or it refused the config).
func (p *pages) assignments(ctx context.Context, data *kioskPage, id, running string, hasStatus bool) {
	if p.s.o.Ledger == nil {
		return
	}
	as, err := p.s.o.Ledger.Assignments(ctx, id)
	if err != nil {
		p.s.log.Warn("kiosk page: assignments", "device", id, "err", err)
		data.AssignErr = "The assignments could not be read. Try again in a moment."
		return
	}
	const keep = 10
	now := p.s.o.Clock.Now()
	for i, a := range as {
		if i == keep {
			break
		}
		data.Assignments = append(data.Assignments, assignmentRow{Serial: a.Serial, Event: a.Event.ID, Counter: a.CounterID,
			Points: a.Event.Points, Rule: strconv.Itoa(a.Event.Volume) + " per " + strings.ToLower(a.Event.Period),
			Issued: a.AssignedAt, InForce: p.s.o.Ledger.InForce(a, now), Replaced: a.ReplacedAt})
	}
	if len(as) > 0 && hasStatus && running != "" && running != as[0].Event.ID {
		data.AssignNote = "The kiosk runs " + running + ", but its latest assignment (serial " + strconv.FormatInt(as[0].Serial, 10) +
			") is " + as[0].Event.ID + ": it has not taken that config yet (offline, or it refused it: see configs rejected)."
	}
}
