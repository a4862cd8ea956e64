-- PostgreSQL only (the set-based path's cache of assignments,
-- ../../assigncache.go): a counter of the assignments table's versions.
-- Every statement that writes the table raises it in the writer's own
-- transaction, so a batch that reads the counter after its locks knows
-- whether what it cached still holds, whoever wrote (an ingest, another
-- instance, an operator's SQL).
CREATE TABLE assignments_version (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    v   BIGINT NOT NULL
);
INSERT INTO assignments_version (one, v) VALUES (true, 0);

CREATE FUNCTION ingest_assignments_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE assignments_version SET v = v + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER assignments_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON assignments
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_assignments_changed();
