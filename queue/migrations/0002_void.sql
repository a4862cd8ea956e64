-- Taps whose commit failed (the kiosk answered storage-error) but whose WAL
-- frames may still be in the file: SQLite could recover such a transaction
-- after a crash. The outbox records the id here, in a transaction of its own
-- that also deletes the checkin should it be visible, and deletes any checkin
-- listed here when it opens, so that a tap answered anything but saved is
-- never forwarded.
CREATE TABLE void (
    id  TEXT    PRIMARY KEY,
    seq INTEGER NOT NULL,
    at  INTEGER NOT NULL                 -- unix milliseconds
) WITHOUT ROWID;
