// Package ingest is the reference central side of the kiosk ⇄ central MQTT
// contract (shared/spec/protocol.md): it takes every kiosk's checkins, books
// them in a SQLite ledger under the event's check-in constraint, and answers
// each checkin id with exactly one Result.
//
// Two halves, so the rules are testable without a broker:
//
//   - Ledger (Open, Process) is pure database logic. Every checkin id is
//     recorded with the exact Result bytes that were sent for it; the dedupe
//     is the ledger write itself (INSERT … ON CONFLICT(id) DO NOTHING, then
//     read back) in the same transaction, so a replayed id gets the identical
//     bytes and is never booked twice.
//   - Service (New, Run) is the MQTT side: it subscribes to P/+/checkin,
//     batches what arrives into one transaction (one fsync per batch), and
//     publishes the Results only after the commit. It acknowledges a checkin
//     to the broker only after that commit too, so a crash loses nothing:
//     the broker redelivers to the persistent session.
//
// Choices where the contract is silent:
//   - A checkin whose payload deviceId differs from the device id in its topic
//     is dropped (counted, logged), not answered: with the broker's access
//     control the topic is the authenticated sender, so the payload is a
//     forgery or a broken kiosk, and an answer would make a kiosk delete a tap
//     that was never booked. The kiosk's pending count shows the problem.
//   - A checkin id already in the ledger for another device is answered
//     invalid-request and not recorded: the first owner keeps its Result and
//     nobody learns another kiosk's outcome.
//   - An invalid chip number (including a random 08… UID) is recorded and
//     answered invalid-request; a payload the contract says to drop (not JSON,
//     over 4 KiB, another version, a required field missing) is dropped.
//   - A synced tappedAt later than its receipt is dated at the receipt.
//   - An unsynced checkin is dated from the latest checkin of the same boot:
//     kiosk uptime now ≈ latest uptimeMs + (now − when that one arrived), so
//     the date is (latest receipt − (latest uptimeMs − uptimeMs)). When a
//     batch holds several checkins of one boot, the latest of them counts.
//   - The check-in window (validFrom, validUntil) is compared with that date.
//   - Constraint periods are counted as intervals of that date ([start, end)
//     of the Brussels calendar period, see Bucket), not as stored keys, so
//     changing an event's period applies to its past check-ins too. They
//     agree with protocol.PeriodBucket, the kiosk's local pre-filter.
//
// Broker configuration for a fleet: the service subscribes with a persistent
// session (clean session false, stable ClientID) and acknowledges after the
// commit, so the broker's per-client in-flight window (Mosquitto's
// max_inflight_messages, default 20) bounds how many checkins one batch can
// hold: raise it (e.g. 1000) for the ingest, and max_queued_messages so that
// checkins queued while the ingest is down are not dropped; turn persistence
// on so they survive a broker restart.
package ingest
