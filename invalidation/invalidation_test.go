package invalidation

import (
	"reflect"
	"sync"
	"testing"

	"querycache.dev/querycache"
)

func TestFromSQL(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want querycache.Change
	}{
		{`INSERT INTO "posts" ("title") VALUES ($1)`, querycache.Change{Tables: []string{"posts"}}},
		{`UPDATE public.posts SET title = ? WHERE id = ?`, querycache.Change{Tables: []string{"posts"}}},
		{`DELETE FROM posts WHERE id IN (SELECT post_id FROM comments)`, querycache.Change{Tables: []string{"posts"}}},
		{`INSERT INTO a VALUES (1); DELETE FROM b`, querycache.Change{Tables: []string{"a", "b"}}},
		{`ALTER TABLE posts ADD COLUMN extra text`, querycache.Change{Tables: []string{"posts"}}},
		{`ALTER TABLE tmp RENAME TO posts`, querycache.Change{Tables: []string{"posts", "tmp"}}},
		{`DROP INDEX idx_posts_title`, querycache.Change{All: true}},
		{`DO $$ BEGIN UPDATE posts SET x = 1; END $$`, querycache.Change{All: true}},
		{`this is not sql`, querycache.Change{All: true}},
		{`SELECT * FROM posts`, querycache.Change{}},
		{`SAVEPOINT sp1`, querycache.Change{}},
		{`PRAGMA foreign_keys = ON`, querycache.Change{}},
	} {
		if got := FromSQL(c.sql); !reflect.DeepEqual(got, c.want) {
			t.Errorf("FromSQL(%q) = %+v; want %+v", c.sql, got, c.want)
		}
	}
}

func TestBufferCommitAppliesOnce(t *testing.T) {
	b := NewBuffer()
	b.Add(querycache.Change{Rows: []querycache.Row{{Table: "posts", PK: "1"}}})
	b.Add(querycache.Change{Tables: []string{"Comments"}})
	if !b.Wrote([]string{"posts"}) || !b.Wrote([]string{`"comments"`}) || b.Wrote([]string{"authors"}) {
		t.Fatal("Wrote does not reflect what was added")
	}
	ch := b.Commit()
	if len(ch.Rows) != 1 || len(ch.Tables) != 1 {
		t.Fatalf("commit returned %+v", ch)
	}
	if again := b.Commit(); !again.Empty() {
		t.Fatalf("second commit returned %+v", again)
	}
}

func TestBufferRollbackDrops(t *testing.T) {
	b := NewBuffer()
	b.Add(querycache.Change{All: true})
	if !b.Wrote([]string{"anything"}) {
		t.Fatal("an unattributed write must count as writing every table")
	}
	b.Rollback()
	if ch := b.Commit(); !ch.Empty() {
		t.Fatalf("commit after rollback returned %+v", ch)
	}
}

func TestBufferConcurrentAdds(t *testing.T) {
	b := NewBuffer()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Add(querycache.Change{Tables: []string{"t"}})
			b.Wrote([]string{"t"})
		}()
	}
	wg.Wait()
	if n := len(b.Commit().Tables); n != 50 {
		t.Fatalf("%d of 50 changes kept", n)
	}
}
