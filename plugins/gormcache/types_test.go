package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// typedTables create a table of the dialect's column types, with a row of
// values and a row of NULLs.
var typedTables = map[string][]string{
	"postgres": {
		`CREATE TABLE typed (id int PRIMARY KEY, u uuid, j jsonb, js json, n numeric(10,3), iv interval,
			a int[], ts timestamp(6), tz timestamptz(6), b bytea, f real, d date, t time, bo boolean, s smallint,
			big bigint, txt text, vc varchar(20), ch char(4), inet_ inet)`,
		`INSERT INTO typed VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b":1}', 12.345,
			'1 day 02:03:04', '{1,2,3}', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123456+05:30',
			'\x00ff10', 1.5, '2024-02-29', '12:34:56', true, 7, 9007199254740993, 'ünï', 'abc', 'ab', '10.0.0.1')`,
		`INSERT INTO typed (id) VALUES (2)`,
	},
	"sqlite": {
		`CREATE TABLE typed (id INTEGER PRIMARY KEY, dec DECIMAL(10,2), bo BOOLEAN, dt DATETIME, ts TIMESTAMP,
			d DATE, bl BLOB, x SOMETHING_ELSE, r REAL, t TEXT, big BIGINT, vc VARCHAR(20))`,
		`INSERT INTO typed VALUES (1, 12.34, 1, '2024-02-29 23:59:59.123456+05:30', '2024-02-29T23:59:59Z',
			'2024-02-29', x'00ff10', 'anything', 1.5, 'ünï', 9007199254740993, 'abc')`,
		`INSERT INTO typed (id) VALUES (2)`,
	},
}

func TestColumnTypes(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		for _, stmt := range typedTables[e.dialect] {
			must(t, e.db.Exec(stmt).Error)
		}
		cases := []struct {
			name string
			run  func(db *gorm.DB) (any, error)
		}{
			{"Find into []map", func(db *gorm.DB) (any, error) {
				var ms []map[string]any
				err := db.Table("typed").Order("id").Find(&ms).Error
				return ms, err
			}},
			{"Raw Scan into []map", func(db *gorm.DB) (any, error) {
				var ms []map[string]any
				err := db.Raw("SELECT * FROM typed ORDER BY id").Scan(&ms).Error
				return ms, err
			}},
			{"Rows scanned into any", func(db *gorm.DB) (any, error) {
				rows, err := db.Table("typed").Order("id").Rows()
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				cols, _ := rows.Columns()
				types, _ := rows.ColumnTypes()
				var out []any
				for _, ct := range types {
					n, nok := ct.Nullable()
					out = append(out, ct.Name(), ct.DatabaseTypeName(), ct.ScanType().String(), n, nok)
				}
				for rows.Next() {
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					if err := rows.Scan(ptrs...); err != nil {
						return nil, err
					}
					out = append(out, vals...)
				}
				return out, rows.Err()
			}},
		}
		for _, c := range cases {
			want, err := c.run(e.db.Scopes(gormcache.NoCache()))
			must(t, err)
			for i := 0; i < 2; i++ {
				var got any
				n := e.statements(func() {
					got, err = c.run(e.db.Scopes(gormcache.Cacheable()))
				})
				must(t, err)
				if i == 1 && n != 0 {
					t.Errorf("%s: second run sent %d statements", c.name, n)
				}
				if err := sameValue(got, want); err != nil {
					t.Errorf("%s run %d: %v", c.name, i+1, err)
				}
			}
		}
		if r := e.cache.Stats().Refusals["unsupported_type"]; r != 0 {
			t.Errorf("%d results refused for unsupported types", r)
		}
	})
}
