// Package report computes statistics and settlement exports over the
// ingest's ledger: per counter, event, device or day, the check-ins central
// answered, the points saved, the refusals by central status and the number
// of distinct passholders; and the quarterly export per counter and event.
//
// It is its own package, apart from package ingest, because it is a reader
// of the ledger and not part of its rules: ingest decides and books each
// checkin (exactly once, under the event's constraint) and must stay small
// and obviously right; report only aggregates what was booked, with its own
// read-only database handle (ingest.Ledger.ReadOnly), so that a report
// scanning a million rows never holds the ingest's writer connection, and
// the command line, the fleet page's /reports and its CSV downloads all get
// the same numbers from one function (Run).
//
// Which time decides the day: the booked tap time, the ledger's dated_ms
// (`datedAt` in `kiosk-ingest ledger`): the kiosk's tappedAt as central
// accepted it, that is tappedAt when the kiosk's clock was synchronised and
// not after the receipt, otherwise central's estimate from the receipt and
// the kiosk's uptime. It is the same instant the check-in constraint was
// applied to, so a report's days agree with the constraint's DAY periods.
// Days are calendar days in the query's time zone (Europe/Brussels by
// default), not UTC: a tap at 2026-12-31T23:30Z is 1 January 2027 in
// Brussels, and so belongs to 2027Q1.
//
// How the local day is computed: in SQL, set-based, the same way on SQLite
// and PostgreSQL. The ledger stores instants as unix milliseconds; Run
// reads the zone's UTC offsets over the queried range from Go's time zone
// database (the DST transitions, a few a year) and sends them as a balanced
// CASE on dated_ms, so the day number is (dated_ms + offset) / 86400000.
// No local-day column is stored: it would be right for one zone only, and
// wrong for every row already booked if the zone's rules changed; the CASE
// costs a few comparisons a row. An index on (dated_ms, …) covering every
// column a report reads (migration 0002_report) lets a range (a quarter) be
// read without touching the rest of the ledger or the Result bytes. The
// aggregate runs on two connections at once, each over the cards whose chip
// number ends in an even or an odd character: a card is in one half only,
// so the counts and the distinct cards of the halves add up.
package report
