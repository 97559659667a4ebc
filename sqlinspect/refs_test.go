package sqlinspect

import "testing"

// TestTableRefs checks the counts the object shortcut relies on: it is
// allowed only for TableRefs == 1, Subqueries == 0 and not Undetermined, so
// every statement that reads its table more than once or another relation
// must show it.
func TestTableRefs(t *testing.T) {
	for _, c := range []struct {
		name       string
		sql        string
		refs, subs int
	}{
		{"gorm pk postgres", `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`, 1, 0},
		{"gorm pk sqlite", "SELECT * FROM `users` WHERE `users`.`id` = ? ORDER BY `users`.`id` LIMIT 1", 1, 0},
		{"pk with in list", `SELECT * FROM users WHERE id IN ($1, $2) AND id = ANY($3)`, 1, 0},
		{"count", `SELECT count(*) FROM users WHERE id = ?`, 1, 0},
		// Anything that reads more than one row reference.
		{"self join", `SELECT e.*, m.name FROM users e JOIN users m ON m.id = e.manager_id WHERE e.id = 1`, 2, 0},
		{"gorm joins same table", `SELECT "users"."id","Manager"."id" AS "Manager__id" FROM "users" LEFT JOIN "users" "Manager" ON "users"."manager_id" = "Manager"."id" WHERE "users"."id" = $1`, 2, 0},
		{"join", `SELECT * FROM users JOIN orders ON orders.user_id = users.id WHERE users.id = 1`, 2, 0},
		{"comma join", `SELECT * FROM users, orders WHERE users.id = 1`, 2, 0},
		{"scalar subquery in select list", `SELECT *, (SELECT COUNT(*) FROM users) AS n FROM users WHERE id = 1`, 2, 1},
		{"scalar subquery same table no from", `SELECT (SELECT max(id) FROM users), name FROM users WHERE id = 1`, 2, 1},
		{"subquery in where", `SELECT * FROM users WHERE id = 1 AND age > (SELECT avg(age) FROM users)`, 2, 1},
		{"subquery in having", `SELECT count(*) FROM users WHERE id = 1 HAVING count(*) > (SELECT 1)`, 1, 1},
		{"subquery in order by", `SELECT * FROM users WHERE id = 1 ORDER BY (SELECT 1)`, 1, 1},
		{"exists", `SELECT * FROM users u WHERE id = 1 AND EXISTS (SELECT 1 FROM users v WHERE v.boss = u.id)`, 2, 1},
		{"not exists without from", `SELECT * FROM users WHERE id = 1 AND NOT EXISTS (SELECT 1)`, 1, 1},
		{"in select", `SELECT * FROM users WHERE id = 1 AND id IN (SELECT user_id FROM bans)`, 2, 1},
		{"cte", `WITH u AS (SELECT * FROM users WHERE id = 1) SELECT * FROM u`, 2, 1},
		{"recursive cte", `WITH RECURSIVE c(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM c WHERE n < 3) SELECT * FROM users WHERE id = 1`, 2, 2},
		{"union", `SELECT * FROM users WHERE id = 1 UNION SELECT * FROM users WHERE id = 2`, 2, 1},
		{"intersect except", `SELECT id FROM users WHERE id = 1 INTERSECT SELECT id FROM users EXCEPT SELECT 3`, 2, 2},
		{"union without from", `SELECT * FROM users WHERE id = 1 UNION ALL SELECT 1, 2`, 1, 1},
		{"lateral", `SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.uid = u.id) x WHERE u.id = 1`, 2, 1},
		{"lateral function", `SELECT * FROM users u CROSS JOIN LATERAL unnest(u.tags) t WHERE u.id = 1`, 2, 0},
		{"sqlite in table", `SELECT * FROM users WHERE id = 1 AND id IN banned`, 2, 0},
		{"table function", `SELECT * FROM json_each(?) WHERE key = 1`, 1, 0},
		{"table functions", `SELECT * FROM users, json_each(users.tags) WHERE users.id = 1`, 2, 0},
		{"derived table", `SELECT * FROM (SELECT * FROM users) u WHERE u.id = 1`, 1, 1},
		{"values", `SELECT * FROM (VALUES (1)) v(id)`, 0, 1},
		{"parenthesised join", `SELECT * FROM (users JOIN orders ON true) WHERE users.id = 1`, 2, 0},
		{"table statement", `TABLE users`, 1, 0},
		{"union table", `SELECT * FROM users WHERE id = 1 UNION TABLE users`, 2, 1},
		{"nested parens count once", `SELECT * FROM users WHERE id = 1 AND x IN ((SELECT 1))`, 1, 1},
		{"array subquery", `SELECT ARRAY(SELECT id FROM tags) FROM users WHERE id = 1`, 2, 1},
		// Writes: targets are not read references.
		{"update", `UPDATE users SET name = 'x' WHERE id = 1`, 0, 0},
		{"update from", `UPDATE users SET n = c.n FROM counts c WHERE c.id = users.id`, 1, 0},
		{"delete using", `DELETE FROM users USING bans WHERE bans.uid = users.id`, 1, 0},
		{"insert select", `INSERT INTO archive SELECT * FROM users`, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := inspect(c.sql)
			if st.TableRefs != c.refs || st.Subqueries != c.subs {
				t.Errorf("Inspect(%q): TableRefs %d, Subqueries %d; want %d, %d", c.sql, st.TableRefs, st.Subqueries, c.refs, c.subs)
			}
		})
	}
}
