package centralweb

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uitpas/tap-kiosk/fleet"
	"github.com/uitpas/tap-kiosk/ingest"
)

// BatchMetrics are the ingest's histograms: checkins per committed batch and
// the commit's duration. Feed them with Observe from
// ingest.ServiceOpts.OnBatch; a Server registers them.
type BatchMetrics struct {
	size, commit prometheus.Histogram
}

// NewBatchMetrics makes the histograms.
func NewBatchMetrics() *BatchMetrics {
	return &BatchMetrics{
		size: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiosk_ingest_batch_size",
			Help:    "Checkins per committed ledger transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 … 1024
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiosk_ingest_commit_duration_seconds",
			Help:    "Time the ledger took to book and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms … 4 s
		}),
	}
}

// Observe records one committed batch; it never blocks.
func (b *BatchMetrics) Observe(size int, commit time.Duration) {
	b.size.Observe(float64(size))
	b.commit.Observe(commit.Seconds())
}

func (b *BatchMetrics) register(r *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{b.size, b.commit} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// descs are the collector's metric descriptions.
type descs struct {
	// ingest
	received, results, replays, collisions, dropped, batches, dbErrors, publishErrors,
	connects, connected, statusReceived, statusDropped *prometheus.Desc
	// feeder
	feederDBErrors, feederOverflow, feederTransitions *prometheus.Desc
	// fleet
	fleetUp, fleetKiosks *prometheus.Desc
	// per kiosk
	online, since, lastSeen, pending, oldestPending, certExpiry, clockSynced, readerOK, displayOK,
	indicatorOK, storageOK, lastTap, lastTapAge, configsRejected, outcomes, info, uptime *prometheus.Desc
}

func newDescs() *descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	dev := "device"
	return &descs{
		received:       d("kiosk_ingest_checkins_received_total", "Messages received on the checkin topics."),
		results:        d("kiosk_ingest_results_total", "Results published, replays included, by status.", "status"),
		replays:        d("kiosk_ingest_replays_total", "Checkin ids answered again from the ledger."),
		collisions:     d("kiosk_ingest_collisions_total", "Checkin ids already booked for another device."),
		dropped:        d("kiosk_ingest_checkins_dropped_total", "Checkin payloads dropped, by reason.", "reason"),
		batches:        d("kiosk_ingest_batches_total", "Ledger transactions committed."),
		dbErrors:       d("kiosk_ingest_db_errors_total", "Ledger transactions that failed (and were retried)."),
		publishErrors:  d("kiosk_ingest_publish_errors_total", "Results whose publish failed."),
		connects:       d("kiosk_ingest_broker_connects_total", "Connections made to the MQTT broker."),
		connected:      d("kiosk_ingest_broker_connected", "1 while the ingest is connected to the MQTT broker."),
		statusReceived: d("kiosk_ingest_status_received_total", "Status messages received."),
		statusDropped:  d("kiosk_ingest_status_dropped_total", "Status messages dropped (undecodable, or deviceId not the topic's)."),

		feederDBErrors:    d("kiosk_ingest_fleet_db_errors_total", "Fleet registry transactions that failed (and were retried)."),
		feederOverflow:    d("kiosk_ingest_fleet_status_overflow_total", "Status messages dropped before the registry because too many waited for one device."),
		feederTransitions: d("kiosk_ingest_fleet_transitions_total", "Online/offline transitions written to the registry."),

		fleetUp:     d("kiosk_fleet_registry_up", "1 when the last read of the fleet registry succeeded."),
		fleetKiosks: d("kiosk_fleet_kiosks", "Kiosks in the registry, by state (online, offline, unknown: checkins but no Status).", "state"),

		online:          d("kiosk_online", "1 when the kiosk is online (Status), 0 when offline (last will).", dev),
		since:           d("kiosk_state_since_timestamp_seconds", "When the kiosk entered its current online/offline state (unix time).", dev),
		lastSeen:        d("kiosk_last_seen_timestamp_seconds", "When central last heard from the kiosk (unix time).", dev),
		pending:         d("kiosk_pending_checkins", "Checkins waiting in the kiosk's queue, as of its last Status.", dev),
		oldestPending:   d("kiosk_oldest_pending_seconds", "Age of the oldest pending checkin: the Status's figure aged since it was received; 0 with none pending.", dev),
		certExpiry:      d("kiosk_certificate_expiry_timestamp_seconds", "When the kiosk's client certificate expires (unix time, to the day, from the Status's certExpiresInDays).", dev),
		clockSynced:     d("kiosk_clock_synced", "1 when the kiosk's clock is synchronised.", dev),
		readerOK:        d("kiosk_reader_ok", "1 when the kiosk's NFC reader is ok.", dev),
		displayOK:       d("kiosk_display_ok", "1 when the kiosk's display is ok.", dev),
		indicatorOK:     d("kiosk_indicator_ok", "1 when the kiosk's buzzer and LED are ok.", dev),
		storageOK:       d("kiosk_storage_ok", "1 when the kiosk's queue is usable (0: set aside, taps refused).", dev),
		lastTap:         d("kiosk_last_tap_timestamp_seconds", "When the kiosk's last tap was (unix time, the kiosk's clock).", dev),
		lastTapAge:      d("kiosk_last_tap_age_seconds", "Seconds since the kiosk's last tap.", dev),
		configsRejected: d("kiosk_configs_rejected_total", "Remote configs the kiosk rejected (as it reports).", dev),
		outcomes:        d("kiosk_tap_outcomes_total", "Taps by the kiosk's own outcome since its queue was created (as it reports).", dev, "outcome"),
		info:            d("kiosk_info", "1 per kiosk, with its version and event as labels.", dev, "version", "event_id"),
		uptime:          d("kiosk_uptime_seconds", "Seconds since kioskd started, as of its last Status.", dev),
	}
}

// ingestCollector reads the ingest's and the feeder's counters at scrape time.
type ingestCollector struct {
	s *Server
	d *descs
}

func (c *ingestCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, x := range []*prometheus.Desc{d.received, d.results, d.replays, d.collisions, d.dropped, d.batches, d.dbErrors,
		d.publishErrors, d.connects, d.connected, d.statusReceived, d.statusDropped,
		d.feederDBErrors, d.feederOverflow, d.feederTransitions} {
		ch <- x
	}
}

func (c *ingestCollector) Collect(ch chan<- prometheus.Metric) {
	d, s := c.d, c.s
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	if s.o.Ingest != nil {
		k := s.o.Ingest.Counters()
		counter(d.received, k.Received)
		for _, st := range ingest.ResultStatuses() {
			counter(d.results, k.ResultsByStatus[st], st)
		}
		counter(d.replays, k.Replays)
		counter(d.collisions, k.Collisions)
		for _, r := range []struct {
			reason string
			n      int64
		}{{"too-large", k.DropTooLarge}, {"malformed", k.DropMalformed}, {"version", k.DropVersion},
			{"invalid", k.DropInvalid}, {"topic", k.DropTopic}, {"device-mismatch", k.DropMismatch}} {
			counter(d.dropped, r.n, r.reason)
		}
		counter(d.batches, k.Batches)
		counter(d.dbErrors, k.DBErrors)
		counter(d.publishErrors, k.PublishErrors)
		counter(d.connects, k.Connects)
		gauge(d.connected, b2f(s.o.Ingest.Connected()))
		counter(d.statusReceived, k.StatusReceived)
		counter(d.statusDropped, k.StatusDropped)
	}
	if s.o.Feeder != nil {
		f := s.o.Feeder.Counters()
		counter(d.feederDBErrors, f.DBErrors)
		counter(d.feederOverflow, f.Overflow)
		counter(d.feederTransitions, f.Transitions)
	}
}

// kioskCollector gives the fleet and per-kiosk metrics of one snapshot.
type kioskCollector struct {
	snap *snapshot
	d    *descs
}

func (c *kioskCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, x := range []*prometheus.Desc{d.fleetUp, d.fleetKiosks,
		d.online, d.since, d.lastSeen, d.pending, d.oldestPending, d.certExpiry, d.clockSynced, d.readerOK, d.displayOK,
		d.indicatorOK, d.storageOK, d.lastTap, d.lastTapAge, d.configsRejected, d.outcomes, d.info, d.uptime} {
		ch <- x
	}
}

func (c *kioskCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.snap.makeMetrics(c.d) {
		ch <- m
	}
}

// makeMetrics makes the snapshot's metrics; figures that age are aged to
// when it was taken (at most SnapshotEvery stale).
func (snap *snapshot) makeMetrics(d *descs) []prometheus.Metric {
	out := make([]prometheus.Metric, 0, 2+len(snap.devices)*20)
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...))
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...))
	}
	gauge(d.fleetUp, b2f(snap.err == nil))
	now := snap.taken
	states := map[string]int{fleet.StateOnline: 0, fleet.StateOffline: 0, fleet.StateUnknown: 0}
	for i := range snap.devices {
		dv := &snap.devices[i]
		states[dv.State]++
		id := dv.ID
		if !dv.LastSeen.IsZero() {
			gauge(d.lastSeen, unix(dv.LastSeen), id)
		}
		if dv.State == fleet.StateUnknown {
			continue
		}
		gauge(d.online, b2f(dv.State == fleet.StateOnline), id)
		if !dv.Since.IsZero() {
			gauge(d.since, unix(dv.Since), id)
		}
		if !dv.HasStatus() {
			continue
		}
		st := &dv.Status
		aged := max(now.Sub(dv.StatusReceived), 0)
		gauge(d.pending, float64(st.Pending), id)
		oldest := 0.0
		if st.Pending > 0 {
			oldest = (time.Duration(st.OldestPendingS)*time.Second + aged).Seconds()
		}
		gauge(d.oldestPending, oldest, id)
		if st.CertExpiresInDays != nil {
			gauge(d.certExpiry, unix(dv.StatusReceived.Add(time.Duration(*st.CertExpiresInDays)*24*time.Hour)), id)
		}
		gauge(d.clockSynced, b2f(st.ClockSynced), id)
		for _, h := range []struct {
			desc *prometheus.Desc
			v    string
		}{{d.readerOK, st.Reader}, {d.displayOK, st.Display}, {d.indicatorOK, st.Indicator}, {d.storageOK, st.Storage}} {
			if h.v != "" {
				gauge(h.desc, b2f(h.v == "ok"), id)
			}
		}
		if t, ok := parseTime(st.LastTapAt); ok {
			gauge(d.lastTap, unix(t), id)
			gauge(d.lastTapAge, max(now.Sub(t), 0).Seconds(), id)
		}
		if r := dv.Extra.ConfigsRejected; r != nil {
			counter(d.configsRejected, *r, id)
		}
		outs := st.Outcomes
		if outs == nil {
			outs = dv.Extra.Outcomes
		}
		for _, o := range sortedKeys(outs) {
			counter(d.outcomes, outs[o], id, o)
		}
		gauge(d.info, 1, id, st.Version, st.EventID)
		up := st.UptimeS
		if up == 0 && dv.Extra.UptimeS != nil {
			up = *dv.Extra.UptimeS
		}
		if up > 0 {
			gauge(d.uptime, float64(up), id)
		}
	}
	for _, state := range []string{fleet.StateOnline, fleet.StateOffline, fleet.StateUnknown} {
		gauge(d.fleetKiosks, float64(states[state]), state)
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
