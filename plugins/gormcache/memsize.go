package gormcache

import (
	"reflect"
	"unsafe"
)

// memSize estimates the memory that keeping v alive keeps: v's own size
// plus everything reachable from it through strings, slices (their whole
// capacity), maps, pointers and interfaces. Memory reachable twice through
// one pointer is counted once; shared string or slice data may be counted
// more than once, which only over-weighs. It is how snapshots are weighed
// against SnapshotBytes (a struct with a large array field, or a Scanner
// that keeps a large buffer, weighs what it really holds, not its payload).
func memSize(v reflect.Value) int64 {
	if !v.IsValid() {
		return 0
	}
	w := sizer{seen: map[unsafe.Pointer]struct{}{}, ptrs: map[reflect.Type]bool{}}
	return int64(v.Type().Size()) + w.refs(v)
}

type sizer struct {
	seen map[unsafe.Pointer]struct{}
	ptrs map[reflect.Type]bool // per walk: does the type reference memory?
}

// mapEntryOverhead approximates a Go map's cost per entry beyond its keys
// and values (buckets, control bytes, load factor).
const mapEntryOverhead = 16

// refs returns the memory v references outside its own storage.
func (w *sizer) refs(v reflect.Value) int64 {
	switch v.Kind() {
	case reflect.String:
		return int64(v.Len())
	case reflect.Slice:
		if v.IsNil() || !w.first(v.UnsafePointer()) {
			return 0
		}
		et := v.Type().Elem()
		n := int64(v.Cap()) * int64(et.Size())
		if w.hasRefs(et) {
			for i := 0; i < v.Len(); i++ {
				n += w.refs(v.Index(i))
			}
		}
		return n
	case reflect.Array:
		var n int64
		if v.Len() > 0 && w.hasRefs(v.Type().Elem()) {
			for i := 0; i < v.Len(); i++ {
				n += w.refs(v.Index(i))
			}
		}
		return n
	case reflect.Pointer:
		if v.IsNil() || !w.first(v.UnsafePointer()) {
			return 0
		}
		e := v.Elem()
		return int64(e.Type().Size()) + w.refs(e)
	case reflect.Map:
		if v.IsNil() || !w.first(v.UnsafePointer()) {
			return 0
		}
		t := v.Type()
		n := int64(v.Len()) * (int64(t.Key().Size()) + int64(t.Elem().Size()) + mapEntryOverhead)
		if w.hasRefs(t.Key()) || w.hasRefs(t.Elem()) {
			it := v.MapRange()
			for it.Next() {
				n += w.refs(it.Key()) + w.refs(it.Value())
			}
		}
		return n
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		return int64(e.Type().Size()) + w.refs(e)
	case reflect.Struct:
		var n int64
		for i := 0; i < v.NumField(); i++ {
			if w.hasRefs(v.Type().Field(i).Type) {
				n += w.refs(v.Field(i))
			}
		}
		return n
	}
	return 0 // numbers, bools; channels and functions are not measured
}

// first reports whether p is seen for the first time in this walk.
func (w *sizer) first(p unsafe.Pointer) bool {
	if p == nil {
		return true
	}
	if _, ok := w.seen[p]; ok {
		return false
	}
	w.seen[p] = struct{}{}
	return true
}

// hasRefs reports whether values of t can reference memory outside
// themselves (so that walking them can find any).
func (w *sizer) hasRefs(t reflect.Type) bool {
	if r, ok := w.ptrs[t]; ok {
		return r
	}
	w.ptrs[t] = true // a recursive type references memory
	r := false
	switch t.Kind() {
	case reflect.String, reflect.Slice, reflect.Pointer, reflect.Map, reflect.Interface:
		r = true
	case reflect.Array:
		r = t.Len() > 0 && w.hasRefs(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if w.hasRefs(t.Field(i).Type) {
				r = true
				break
			}
		}
	}
	w.ptrs[t] = r
	return r
}
