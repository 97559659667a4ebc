package gormcache

import (
	"reflect"
	"testing"
	"time"
)

type sizeNode struct {
	Next *sizeNode
	Name string
	tags []string
}

func TestMemSize(t *testing.T) {
	type wide struct {
		ID  uint
		Pad [1 << 20]byte
	}
	loop := &sizeNode{Name: "abc", tags: []string{"xy", "z"}}
	loop.Next = loop
	big := make([]byte, 3, 1<<16)
	m := map[string][]int{"a": make([]int, 10), "bb": nil}
	now := time.Now()
	var iface any = "hello"
	for _, c := range []struct {
		name     string
		v        any
		min, max int64
	}{
		{"int", int64(1), 8, 8},
		{"string", "hello", 16 + 5, 16 + 5},
		{"large array field", wide{}, 1 << 20, 1<<20 + 64},
		{"slice of large structs", make([]wide, 3), 3 << 20, 3<<20 + 64},
		{"slice capacity", big, 1 << 16, 1<<16 + 64},
		{"map", m, 10*8 + 3, 4096},
		{"cycle", loop, 3 + 2*16 + 3, 512},
		{"time", now, 24, 1 << 20},
		{"interface", &iface, 16 + 16 + 5, 64},
	} {
		got := memSize(reflect.ValueOf(c.v))
		if got < c.min || got > c.max {
			t.Errorf("%s: %d bytes; want %d..%d", c.name, got, c.min, c.max)
		}
	}
}
