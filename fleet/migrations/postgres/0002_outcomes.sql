-- The history of each kiosk's outcome counts (Status "outcomes", counts
-- since its queue was created): a row whenever a refusal count changed, so
-- that the kiosk-local refusals of any range of days are differences of two
-- rows. event_id is the event the kiosk was serving then.
CREATE TABLE IF NOT EXISTS fleet_outcomes (
	device_id   TEXT   NOT NULL,
	received_ms BIGINT NOT NULL,
	event_id    TEXT   NOT NULL,
	counts      TEXT   NOT NULL, -- JSON object: outcome → count
	PRIMARY KEY (device_id, received_ms)
);
