-- Reports (package report) read every checkin of a range: this index holds
-- each column they read, led by the booked tap time (dated_ms), so that a
-- report scans a narrow index (about a quarter of the table's bytes: no
-- Result, no ids) and a range such as a quarter is one seek. Idempotent.
CREATE INDEX IF NOT EXISTS checkins_report
    ON checkins (dated_ms, counter_id, event_id, device_id, status, points, chip_number);
