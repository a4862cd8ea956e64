-- The PostgreSQL form of ../0003_assign.sql.
-- Assignments: which device may book which event, from when (see assign.go).
-- One row per signed Config central recorded for a device; replaced_ms is
-- when the device's next Config (a higher serial) was issued, NULL while
-- this one is the latest. Points and constraint are the Config's: the
-- rules take them from here, not from the events table.
CREATE TABLE assignments (
    device_id      TEXT    NOT NULL,
    serial         BIGINT  NOT NULL,
    event_id       TEXT    NOT NULL,
    counter_id     TEXT    NOT NULL DEFAULT '',
    points         INTEGER NOT NULL CHECK (points >= 0),
    period         TEXT    NOT NULL CHECK (period IN ('ABSOLUTE','DAY','WEEK','MONTH','QUARTER','YEAR')),
    volume         INTEGER NOT NULL CHECK (volume >= 1),
    valid_from_ms  BIGINT , -- NULL: open
    valid_until_ms BIGINT , -- NULL: open
    assigned_ms    BIGINT  NOT NULL, -- the Config's issuedAt
    replaced_ms    BIGINT ,
    recorded_at    TEXT    NOT NULL,
    PRIMARY KEY (device_id, serial)
);

CREATE INDEX assignments_event ON assignments (device_id, event_id);
