-- The counts of tap outcomes since this queue was created (saved,
-- already-saved, blocked, …), reported to central in the kiosk's Status.
-- saved is counted in the transaction of the checkin itself; refusals are
-- counted in memory and written with the next checkin or within
-- outcomeFlushEvery, whichever comes first.
CREATE TABLE outcome (
    name TEXT    PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
