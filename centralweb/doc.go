// Package centralweb is central's HTTP side: the opt-in listener of
// kiosk-ingest (-http ADDR) with /metrics for Prometheus and the read-only
// fleet pages for a support desk (/, /kiosk/D, /reports with CSV downloads).
//
// It is its own package, apart from ingest (the ledger and the check-in
// rules), fleet (the registry and its alerts) and report (the statistics),
// because it only presents what those packages keep: it writes nothing, holds
// no state of record, and is the one place that knows HTTP, Prometheus's
// client library and HTML. Keeping it apart keeps those dependencies out of
// the ingest's hot path and out of every kiosk package, and lets the listener
// stay off (nothing listens unless -http is given).
//
// Metrics are read at scrape time by a custom prometheus.Collector from a
// snapshot of the fleet registry refreshed at most every SnapshotEvery
// (default 1 s), so a scrape of a thousand kiosks costs one registry query
// at most, and a Status change is visible within the feeder's flush plus
// that second. Every Server has its own prometheus.Registry: several
// ingests may run in one process (tests, the fleet simulator).
//
// The pages are server-rendered with html/template from embedded files (no
// build step, no script). They show no chip number and no secret: device
// ids, states, Status fields and counts only. Times are shown in the
// configured zone (Europe/Brussels by default). Only GET and HEAD are
// served. Access control is optional basic auth (Opts.Auth), or a reverse
// proxy in front (deploy/README.md).
package centralweb
