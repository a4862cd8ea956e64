-- The PostgreSQL form of ../0001_init.sql (the SQLite ledger): the same
-- tables, columns and meaning; booleans are BOOLEAN, bytes BYTEA, and
-- `booked` stands in for SQLite's rowid as the booking order.

-- The ledger: one row per checkin id ever answered, with the exact Result
-- bytes sent, so that a replayed id gets the identical answer.
CREATE TABLE checkins (
    id           TEXT    PRIMARY KEY,
    device_id    TEXT    NOT NULL,
    seq          BIGINT  NOT NULL,
    chip_number  TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    counter_id   TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL,
    points       INTEGER NOT NULL,
    tapped_at    TEXT    NOT NULL, -- as the kiosk sent it
    clock_synced BOOLEAN NOT NULL,
    dated_ms     BIGINT  NOT NULL, -- the instant the rules used (unix ms)
    received_at  TEXT    NOT NULL,
    result       BYTEA   NOT NULL,
    booked       BIGINT  GENERATED ALWAYS AS IDENTITY -- insertion order, for the export
);

-- The constraint check counts saved checkins of (chip, event) in a period.
CREATE INDEX checkins_saved ON checkins (chip_number, event_id, dated_ms) WHERE status = 'saved';
CREATE INDEX checkins_booked ON checkins (booked);

CREATE TABLE events (
    id             TEXT    PRIMARY KEY,
    points         INTEGER NOT NULL CHECK (points >= 0),
    period         TEXT    NOT NULL CHECK (period IN ('ABSOLUTE','DAY','WEEK','MONTH','QUARTER','YEAR')),
    volume         INTEGER NOT NULL CHECK (volume >= 1),
    valid_from_ms  BIGINT, -- NULL: open
    valid_until_ms BIGINT  -- NULL: open
);

CREATE TABLE passholders (
    chip_number  TEXT    PRIMARY KEY,
    total_points INTEGER NOT NULL DEFAULT 0,
    blocked      BOOLEAN NOT NULL DEFAULT false,
    created_at   TEXT    NOT NULL
);

-- The highest uptime seen per kiosk boot and when it was received: how central
-- estimates a kiosk's uptime "now" to date checkins from an unsynced clock.
CREATE TABLE boots (
    device_id   TEXT   NOT NULL,
    boot_id     TEXT   NOT NULL,
    uptime_ms   BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, boot_id)
);
