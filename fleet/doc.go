// Package fleet is central's view of the kiosks: the fleet registry (per
// device its last Status, online or offline and since when, first and last
// seen, last checkin, and the history of online/offline transitions) and the
// alerts computed from it.
//
// It is a package of its own, apart from package ingest, because it is a
// different concern with a different life: ingest keeps the ledger of record
// and the check-in rules, where every write is a passholder's point and is
// answered to a kiosk; the registry is operational state, rebuilt from the
// kiosks' retained Status at any time, read by the fleet command, metrics and
// pages. It shares the ledger's database (one file or one PostgreSQL schema
// to run and back up) but has its own tables (fleet_…) and its own embedded
// migrations, recorded in their own table (fleet_migrations), applied on the
// *sql.DB the ledger hands out. It knows neither MQTT nor the ledger's rules:
// the ingest feeds it decoded Status messages and booked checkins through a
// Feeder, which coalesces them per device on its own goroutine so that
// status traffic never holds up checkins.
//
// Ordering: a Status carries the kiosk's own "at". One older than the stored
// Status (both with a synchronised clock) is stale and changes nothing; a
// byte-identical one (the retained Status delivered again on a new
// subscription) is a duplicate and changes nothing either, so that
// resubscribing creates no false transitions. When either clock is not
// synchronised "at" cannot be compared (a Raspberry Pi without a real-time
// clock boots in 1970) and arrival order decides. The last will, a Status
// with only online=false and deviceId, changes the state only: the last full
// Status stays, so an offline kiosk still shows what it last reported.
package fleet
