-- The outbox: one row per checkin not yet answered by central. seq is the
-- rowid, so pending checkins are read in seq order without another index.
CREATE TABLE checkin (
    seq       INTEGER PRIMARY KEY,
    id        TEXT    NOT NULL UNIQUE,
    queued_at INTEGER NOT NULL,          -- unix milliseconds
    chip_key  BLOB    NOT NULL,          -- history key of the tap (hashed chip)
    event_id  TEXT    NOT NULL,
    bucket    TEXT    NOT NULL,          -- "" = the tap wrote no history row
    body      BLOB    NOT NULL
);

-- Local check-in history for the constraint pre-filter. The chip number is
-- stored hashed: history outlives the checkin and needs no card number.
-- WITHOUT ROWID keyed on the lookup key: one B-tree per insert, counting is a
-- range scan.
CREATE TABLE history (
    chip_key BLOB    NOT NULL,
    event_id TEXT    NOT NULL,
    bucket   TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    at       INTEGER NOT NULL,           -- unix milliseconds
    PRIMARY KEY (chip_key, event_id, bucket, id)
) WITHOUT ROWID;

-- last_seq is the highest seq ever deleted from checkin. The highest seq ever
-- assigned is max(last_seq, max(checkin.seq)), so Enqueue writes no counter
-- row and Done keeps last_seq up to date in its own transaction.
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (k, v) VALUES ('last_seq', 0);
