-- The fleet registry: one row per kiosk, and its online/offline history.
-- Times are Unix milliseconds (central's clock, except status_at_ms: the
-- kiosk's own "at" of the stored Status).
CREATE TABLE IF NOT EXISTS fleet_devices (
	device_id          TEXT PRIMARY KEY,
	online             BOOLEAN,          -- NULL: no Status yet (seen by its checkins only)
	since_ms           BIGINT,           -- online/offline since
	first_seen_ms      BIGINT NOT NULL,
	last_seen_ms       BIGINT NOT NULL,  -- last heard from the kiosk (a Status or a checkin; not its last will)
	last_checkin_ms    BIGINT,           -- last checkin booked
	status_json        TEXT,             -- the last Status as received (a last will does not replace it)
	status_at_ms       BIGINT,
	status_synced      BOOLEAN,          -- the kiosk's clock was synchronised at status_at_ms
	status_received_ms BIGINT,
	version            TEXT,
	event_id           TEXT,
	pending            BIGINT,
	oldest_pending_s   BIGINT,
	clock_synced       BOOLEAN,
	reader             TEXT,
	display            TEXT,
	indicator          TEXT,
	storage            TEXT,
	cert_expires_days  BIGINT
);

CREATE TABLE IF NOT EXISTS fleet_transitions (
	id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id TEXT NOT NULL,
	at_ms     BIGINT NOT NULL,
	online    BOOLEAN NOT NULL,
	cause     TEXT NOT NULL              -- status | will | retained
);
CREATE INDEX IF NOT EXISTS fleet_transitions_device ON fleet_transitions (device_id, at_ms);
