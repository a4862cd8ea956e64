// Package ingest is the reference central side of the kiosk ⇄ central MQTT
// contract (shared/spec/protocol.md): it takes every kiosk's checkins, books
// them in a ledger (SQLite, or PostgreSQL for a region that outgrows one
// machine) under the event's check-in constraint, and answers each checkin id
// with exactly one Result.
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
// Scaling out. Open takes a SQLite file path or a postgres:// URL. The rules
// (process.go) are written once; a dialect (dialect.go) holds what differs:
// how to open, the embedded migrations (migrations/*.sql for SQLite,
// migrations/postgres/*.sql), placeholders, the export order, and the locks.
// Several Services, each with its own Ledger, may share one PostgreSQL
// database and one MQTT shared subscription group (SharedGroup: the broker
// hands each checkin to one member). A republish of an id can then land on
// another instance while the first still has it in an open transaction, and
// two taps of one card can be booked by two instances at once. The ledger
// keeps its guarantees there with READ COMMITTED transactions and a
// transaction-scoped advisory lock per chip number, taken for every chip of
// the batch, in key order, before the batch reads or writes anything:
//
//   - Two batches that share a chip run one after the other from that point
//     on; everything the rules read about a card (its passholder row, its
//     saved checkins, a checkin id it was tapped under) is read after the
//     other batch committed, in a fresh READ COMMITTED snapshot per
//     statement. So the volume is respected, the totalPoints of each Result
//     is that card's true running total, and a replayed id is read back
//     committed and answered with the identical stored bytes.
//   - Per chip rather than per (chip, event): the passholder's total is per
//     chip and every Result carries it. Rather than SELECT … FOR UPDATE on
//     the passholder: the row may not exist yet (enrolment, refusals), and
//     the lock must not depend on it. Rather than SERIALIZABLE with retry: a
//     batch of up to 256 checkins would be retried whole on any overlap, and
//     predicate locks on the count's index ranges give false conflicts; the
//     advisory lock is exact and costs one statement per batch.
//   - All locks before any write, in key order: two batches cannot deadlock
//     on chips, nor on a checkin id (both would need its chip first); the
//     boots rows are written once per boot in key order too. What is left (an
//     id reused with another chip, two batches auto-creating the same two
//     events in opposite order) is broken by PostgreSQL's deadlock detector,
//     and ProcessBatch runs the aborted transaction again.
//   - The locks are keyed by schema and chip (hashtextextended), so ledgers
//     in separate schemas of one database do not wait for each other; a hash
//     collision only makes two cards wait for each other.
//
// SQLite needs no lock: a write transaction (BEGIN IMMEDIATE) excludes every
// other writer, also in another process on the same file (busy_timeout 5 s),
// so two SQLite ingests on one file are correct but write one at a time.
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
//   - An event id that is not valid UTF-8 or holds a NUL (which JSON can
//     carry as \u0000, and PostgreSQL's text refuses) is answered
//     invalid-request; such bytes in the counter id or tappedAt are stored
//     as U+FFFD, a boot id with them counts as no boot id. Both dialects
//     answer them alike, so no input can stop a PostgreSQL ledger.
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
// on so they survive a broker restart. Measured with Mosquitto 2.0.11: the
// window holds until the first PUBACKs, after which the broker released more
// than max_inflight_messages (batches of 100 and 190 with a window of 10),
// so BatchSize is the bound that holds.
//
// Shared subscriptions with Mosquitto 2.0.11 (tested in shared_test.go): a
// group of ingests with clean session false splits the checkins round robin,
// per message. The broker keeps routing to a member whose session persists
// while it is disconnected, and queues that member's share for it: those
// checkins are answered when it comes back, or earlier when the kiosk's
// retry lands on a member that is up (the later answer is then a replay, the
// same bytes, which the kiosk ignores). An instance taken away for good
// should have its session removed (connect once with clean session true).
package ingest
