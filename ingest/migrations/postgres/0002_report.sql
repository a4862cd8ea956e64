-- The PostgreSQL form of ../0002_report.sql: the covering index of the
-- reports (package report), led by the booked tap time. Idempotent.
CREATE INDEX IF NOT EXISTS checkins_report
    ON checkins (dated_ms, counter_id, event_id, device_id, status, points, chip_number);
