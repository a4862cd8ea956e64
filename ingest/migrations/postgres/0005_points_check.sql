-- PostgreSQL only (the set-based path, ../../pgbatch.go): the check that a
-- batch's points' update reached every card it read. The update runs in one
-- pipeline with the batch's COMMIT, so a count found short by the client
-- would come after the commit: raising here fails the transaction instead,
-- and the server skips the COMMIT. SQLSTATE KI001 is the ledger's own.
CREATE OR REPLACE FUNCTION ingest_points_added(added bigint, sent integer) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF added <> sent THEN
        RAISE EXCEPTION 'ingest: % of % cards'' points added: a passholder changed under the batch', added, sent
            USING ERRCODE = 'KI001';
    END IF;
    RETURN added;
END
$$;
