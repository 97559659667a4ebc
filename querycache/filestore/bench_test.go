package filestore_test

import (
	"fmt"
	"testing"
	"time"

	"querycache.dev/querycache/filestore"
)

// BenchmarkFetchHit reads an entry and the two versions a table query
// records (a hit's store call).
func BenchmarkFetchHit(b *testing.B) {
	s := open(b, filestore.Options{})
	versions := []string{"epoch", "tbl:users"}
	if err := s.Put(bg, "k", make([]byte, 512), time.Hour); err != nil {
		b.Fatal(err)
	}
	if _, _, err := s.Fetch(bg, "k", versions); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, _, err := s.Fetch(bg, "k", versions); err != nil || v == nil {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkPut writes 512-byte entries (a fill without versions).
func BenchmarkPut(b *testing.B) {
	s := open(b, filestore.Options{})
	v := make([]byte, 512)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Put(bg, fmt.Sprint("k", i%1000), v, time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBump replaces one version.
func BenchmarkBump(b *testing.B) {
	s := open(b, filestore.Options{})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Bump(bg, []string{"tbl:users"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompareAndSwap increments a counter.
func BenchmarkCompareAndSwap(b *testing.B) {
	s := open(b, filestore.Options{})
	var old []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		next := []byte(fmt.Sprint(i))
		if ok, err := s.CompareAndSwap(bg, "n", old, next, time.Hour, nil); err != nil || !ok {
			b.Fatal(ok, err)
		}
		old = next
		i++
	}
}
