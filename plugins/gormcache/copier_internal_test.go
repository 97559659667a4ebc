package gormcache

import (
	"reflect"
	"testing"
)

type copyPlainArrays struct {
	ID   [16]byte
	Blob [64]byte
	N    [3]int
}

type copyPointerArrays struct {
	P [2]*int
	S [2][]int
}

// TestCopierArrays: an array of plain data needs no copier (assignment
// copies it whole), and neither does a struct of such arrays; an array of
// references is still copied element by element, deeply.
func TestCopierArrays(t *testing.T) {
	var c copiers
	for _, typ := range []reflect.Type{reflect.TypeFor[[16]byte](), reflect.TypeFor[copyPlainArrays](), reflect.TypeFor[[4][8]int]()} {
		fn, ok := c.copierFor(typ)
		if !ok || fn != nil {
			t.Errorf("%v: copier %v (ok %v), want none: plain data is copied by assignment", typ, fn != nil, ok)
		}
	}
	fn, ok := c.copierFor(reflect.TypeFor[copyPointerArrays]())
	if !ok || fn == nil {
		t.Fatalf("copyPointerArrays: copier %v (ok %v), want a deep copier", fn != nil, ok)
	}
	a, b := 1, 2
	src := copyPointerArrays{P: [2]*int{&a, &b}, S: [2][]int{{1}, {2, 3}}}
	var dst copyPointerArrays
	fn(reflect.ValueOf(&dst).Elem(), reflect.ValueOf(src))
	if !reflect.DeepEqual(dst, src) {
		t.Fatalf("copy %+v, want %+v", dst, src)
	}
	*dst.P[0] = 9
	dst.S[1][0] = 9
	if a != 1 || src.S[1][0] != 2 {
		t.Fatal("the copy shares memory with its source")
	}
}
