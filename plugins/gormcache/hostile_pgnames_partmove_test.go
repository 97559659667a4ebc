package gormcache_test

import (
	"testing"
)

// BUG: an UPDATE of a partitioned table that changes the partition key
// moves the row: PostgreSQL deletes it from the old partition and inserts
// it into the new one, firing the old partition's DELETE row triggers and
// the new one's INSERT row triggers (docs: "5.11.2.3", CREATE TRIGGER
// notes). The plugin walks the parent's partitions as updated, so only
// their UPDATE triggers are followed: a DELETE or INSERT trigger of a
// partition that writes another table is missed. (Writes through the
// parent that insert do follow the partition's INSERT trigger.) README:
// "triggers ... partitions and inheritance (a write to a partition reaches
// its parent's queries and the other way round)".
//
// Order of events: (1) SELECT count(*) FROM pgn_log is filled and hit;
// (2) UPDATE pgn_pp SET id = 2 WHERE id = 1 commits through db.Exec; the
// row moves from pgn_pp_1 to pgn_pp_2 and a partition trigger inserts into
// pgn_log; (3) the count is served from the cache, old.
func TestHostilePgnPartitionMoveTriggers(t *testing.T) {
	base := `CREATE TABLE pgn_log (tag text);
CREATE FUNCTION pgn_logf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pgn_log VALUES (TG_TABLE_NAME || ':' || TG_OP); RETURN NULL; END $$;
CREATE TABLE pgn_pp (id integer, v integer) PARTITION BY LIST (id);
CREATE TABLE pgn_pp_1 PARTITION OF pgn_pp FOR VALUES IN (1);
CREATE TABLE pgn_pp_2 PARTITION OF pgn_pp FOR VALUES IN (2);
INSERT INTO pgn_pp VALUES (1, 1)`
	t.Run("delete_trigger_of_source_partition", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, base+";\nCREATE TRIGGER pgn_ppd AFTER DELETE ON pgn_pp_1 FOR EACH ROW EXECUTE FUNCTION pgn_logf()")
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM pgn_log"), pgnExec("UPDATE pgn_pp SET id = 2 WHERE id = 1"))
	})
	t.Run("insert_trigger_of_target_partition", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, base+";\nCREATE TRIGGER pgn_ppi AFTER INSERT ON pgn_pp_2 FOR EACH ROW EXECUTE FUNCTION pgn_logf()")
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM pgn_log"), pgnExec("UPDATE pgn_pp SET id = 2 WHERE id = 1"))
	})
}
