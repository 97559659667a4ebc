package gormcache

import (
	"database/sql/driver"
	"reflect"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

func samplerPayload(t *testing.T, cols []string, rows ...[]driver.Value) []byte {
	t.Helper()
	res := &result{}
	for _, c := range cols {
		res.columns = append(res.columns, column{name: c, scanType: reflect.TypeFor[int64](), dbType: "INTEGER"})
	}
	for _, r := range rows {
		res.values = append(res.values, r...)
	}
	b, err := encodeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSameResult(t *testing.T) {
	a := samplerPayload(t, []string{"id", "n"}, []driver.Value{int64(1), int64(10)}, []driver.Value{int64(2), int64(20)})
	swapped := samplerPayload(t, []string{"id", "n"}, []driver.Value{int64(2), int64(20)}, []driver.Value{int64(1), int64(10)})
	changed := samplerPayload(t, []string{"id", "n"}, []driver.Value{int64(1), int64(11)}, []driver.Value{int64(2), int64(20)})
	fewer := samplerPayload(t, []string{"id", "n"}, []driver.Value{int64(1), int64(10)})
	renamed := samplerPayload(t, []string{"id", "m"}, []driver.Value{int64(1), int64(10)}, []driver.Value{int64(2), int64(20)})
	dup := samplerPayload(t, []string{"id", "n"}, []driver.Value{int64(1), int64(10)}, []driver.Value{int64(1), int64(10)})
	for _, c := range []struct {
		name   string
		db     []byte
		cached []byte
		want   bool
	}{
		{"same", a, a, true},
		{"other order", swapped, a, true},
		{"a value changed", changed, a, false},
		{"a row gone", fewer, a, false},
		{"a column renamed", renamed, a, false},
		{"multiset, not set", dup, a, false},
		{"unrecordable database result", nil, a, false},
		{"garbage entry", a, []byte("garbage"), false},
	} {
		if got := sameResult(c.db, c.cached); got != c.want {
			t.Errorf("%s: sameResult = %v; want %v", c.name, got, c.want)
		}
	}
}

func TestRowLimits(t *testing.T) {
	for _, c := range []struct {
		sql          string
		limit, order bool
	}{
		{`SELECT * FROM "users" WHERE id = $1`, false, false},
		{`SELECT * FROM "users" ORDER BY "users"."id" LIMIT 1`, true, true},
		{`SELECT * FROM users LIMIT 1`, true, false},
		{`SELECT * FROM users OFFSET 5`, true, false},
		{`SELECT * FROM users FETCH FIRST 3 ROWS ONLY`, true, false},
		{`SELECT 'limit' AS "offset" FROM users -- LIMIT 3`, false, false},
		{`SELECT $x$ LIMIT $x$ FROM users /* limit */`, false, false},
		{`SELECT * FROM users WHERE name = 'unclosed LIMIT`, true, false},
		{`SELECT "order", "by" FROM users LIMIT 2`, true, false},
		{`SELECT * FROM users ORDER BY name`, false, true},
	} {
		if l, o := rowLimits(c.sql); l != c.limit || o != c.order {
			t.Errorf("rowLimits(%q) = %v, %v; want %v, %v", c.sql, l, o, c.limit, c.order)
		}
	}
}

// TestSamplerHitAllocations: on the hit path, the sampler's observer
// allocates nothing for a hit it does not sample, nor for other outcomes.
func TestSamplerHitAllocations(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := New(c, SampleFreshness(SamplerOptions{Rate: 1 << 62}))
	if p.sampler == nil || len(p.observers) != 1 {
		t.Fatal("SampleFreshness did not install its observer")
	}
	db := &gorm.DB{Statement: &gorm.Statement{Vars: []any{int64(1)}}}
	hit := &Event{Outcome: OutcomeHit, SQL: "SELECT * FROM t WHERE id = ?", Key: "k", payload: []byte("R"), versions: []string{"v"}}
	miss := &Event{Outcome: OutcomeMiss, SQL: "SELECT 1", payload: []byte("R")}
	if n := testing.AllocsPerRun(1000, func() { p.observe(db, hit); p.observe(db, miss) }); n != 0 {
		t.Fatalf("%v allocations per unsampled hit", n)
	}
	if r := p.Freshness(); r.Sampled > 1 || !r.Enabled {
		t.Fatalf("report %+v", r)
	}
	// Off: no observer at all.
	if q := New(c, SampleFreshness(SamplerOptions{})); q.sampler != nil || len(q.observers) != 0 {
		t.Fatal("SampleFreshness with Rate 0 installed a sampler")
	}
	// A second SampleFreshness replaces the options, not adds a sampler.
	q := New(c, SampleFreshness(SamplerOptions{Rate: 10}), SampleFreshness(SamplerOptions{Rate: 20}))
	if len(q.observers) != 1 || q.Freshness().Rate != 20 {
		t.Fatalf("two SampleFreshness: %d observers, rate %d", len(q.observers), q.Freshness().Rate)
	}
}
