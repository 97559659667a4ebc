package keys

import "testing"

func BenchmarkObjectKey(b *testing.B) {
	n := NewNamespace("app:")
	fp := Sum([]byte("SELECT * FROM posts WHERE id = ?"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = n.Object("db1", "posts", "42", fp)
		_ = n.ObjectVersion("posts", "42")
	}
}

func BenchmarkFingerprint(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f := NewBuilder()
		f.String("sqlite")
		f.String("db1")
		f.String(`SELECT * FROM "posts" WHERE "posts"."id" = ? AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT ?`)
		f.Value(42)
		f.Value(1)
		_ = f.Sum()
	}
}
