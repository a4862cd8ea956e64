-- PostgreSQL only (the set-based path, ../../pgbatch.go): room in each
-- passholders page for the new version of a row, so that adding a card's
-- points is a HOT update (total_points is in no index) rather than a new
-- entry in the primary key per tap. Applies to pages written from now on.
ALTER TABLE passholders SET (fillfactor = 70);
