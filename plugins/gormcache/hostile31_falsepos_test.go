package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h31StillCaching fails when a marked read of q is not served from the
// cache on its second run after stmt ran through the plugin.
func h31StillCaching(t *testing.T, e *env, q, stmt string) {
	t.Helper()
	h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
	if n := e.statements(func() { h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q) }); n != 0 {
		t.Fatalf("the read is not cached before (%d statements)", n)
	}
	must(t, e.db.Exec(stmt).Error)
	h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
	if n := e.statements(func() { h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q) }); n != 0 {
		t.Errorf("REGRESSION: caching stopped after %q (a read still sends %d statements; bypasses %v)", stmt, n, e.cache.Stats().Bypasses)
	}
}

// REGRESSION (caching stopped wrongly): sqlinspect's alterDefaults
// (sqlinspect/ddl.go) takes the first SET after ALTER USER for a
// setting, so ALTER USER MAPPING ... OPTIONS (SET password '...') - a
// postgres_fdw credential rotation, which changes no connection's
// settings - is session state: caching stops for the database for good.
func TestHostile31AlterUserMappingStopsCaching(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, `CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE SERVER h31_srv FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'test');
CREATE USER MAPPING FOR CURRENT_USER SERVER h31_srv OPTIONS (user 'postgres', password 'old');
CREATE TABLE h31u_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h31u_items VALUES (1, 'a')`)
	h31StillCaching(t, e, "SELECT v FROM h31u_items WHERE id = 1",
		"ALTER USER MAPPING FOR CURRENT_USER SERVER h31_srv OPTIONS (SET password 'new')")
}

// REGRESSION (caching stopped wrongly): ALTER ROLE <another role> SET
// search_path (giving a reporting role its own schema, a common
// migration) changes only the sessions of that role; the plugin's
// connections log in as another one and are untouched, yet caching stops
// for the database for good (sqlinspect alterDefaults does not look at
// which role, and the plugin does not compare it with its own).
func TestHostile31AlterOtherRoleSetStopsCaching(t *testing.T) {
	// Held: which role an ALTER ROLE ... SET names is not compared with the
	// role the plugin's connections log in as; caching stops (safe, and
	// logged once). Not fixed.
	t.Skip("held: ALTER ROLE <another role> SET stops caching (conservative)")
	e := newEnv(t, h31Postgres(t), stores[0], gormcacheOptionsNone())
	role := "h31_reporting_" + owRandom()
	must(t, e.db.Exec("CREATE ROLE "+role+" NOLOGIN").Error)
	t.Cleanup(func() { _ = e.db.Exec("DROP ROLE IF EXISTS " + role).Error })
	h16Exec(t, e, `CREATE TABLE h31o_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h31o_items VALUES (1, 'a')`)
	h31StillCaching(t, e, "SELECT v FROM h31o_items WHERE id = 1", "ALTER ROLE "+role+" SET search_path = reports, public")
}

func gormcacheOptionsNone() querycache.Options { return querycache.Options{} }
