package gormcache

import (
	"reflect"
	"time"
)

// A copier deep-copies src into the settable dst, so that a cached
// snapshot and the values handed to callers never share mutable memory.
// Strings and *time.Location are immutable and shared; pointers, slices and
// maps are copied.
type copier func(dst, src reflect.Value)

type copierEntry struct {
	fn   copier // nil when plain assignment is a deep copy
	ok   bool   // false: the type cannot be copied safely
	done bool
}

// copiers remembers the copiers built for one plugin's types.
type copiers struct {
	memo memo[reflect.Type, *copierEntry]
}

// maxCopierTypes bounds the types whose copiers a plugin remembers.
const maxCopierTypes = 4096

// copierFor returns how to deep-copy values of t, and false for types that
// cannot be copied safely: interfaces, channels, functions, and structs with
// unexported reference fields (other than time.Time's location).
func (c *copiers) copierFor(t reflect.Type) (copier, bool) {
	if e, ok := c.memo.load(t); ok {
		return e.fn, e.ok
	}
	e := c.build(t, map[reflect.Type]*copierEntry{})
	return e.fn, e.ok
}

func (c *copiers) build(t reflect.Type, building map[reflect.Type]*copierEntry) *copierEntry {
	if e, ok := c.memo.load(t); ok {
		return e
	}
	if e, ok := building[t]; ok {
		return e // a recursive type: its entry is completed further up
	}
	e := &copierEntry{ok: true}
	building[t] = e
	switch {
	case t == reflect.TypeFor[time.Time]():
	default:
		switch t.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
			reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		case reflect.Pointer:
			elem := c.build(t.Elem(), building)
			e.ok = elem.ok
			e.fn = func(dst, src reflect.Value) {
				if src.IsNil() {
					dst.SetZero()
					return
				}
				n := reflect.New(t.Elem())
				copyWith(elem, n.Elem(), src.Elem())
				dst.Set(n)
			}
		case reflect.Slice:
			elem := c.build(t.Elem(), building)
			e.ok = elem.ok
			e.fn = func(dst, src reflect.Value) {
				if src.IsNil() {
					dst.SetZero()
					return
				}
				n := reflect.MakeSlice(t, src.Len(), src.Len())
				if elem.done && elem.fn == nil {
					reflect.Copy(n, src)
				} else {
					for i := 0; i < src.Len(); i++ {
						copyWith(elem, n.Index(i), src.Index(i))
					}
				}
				dst.Set(n)
			}
		case reflect.Array:
			elem := c.build(t.Elem(), building)
			e.ok = elem.ok
			if elem.done && elem.fn == nil {
				// Plain data ([16]byte of a uuid, [8192]byte): assignment
				// copies it whole. Element by element, through reflection,
				// it cost every hit a call per byte.
				break
			}
			e.fn = func(dst, src reflect.Value) {
				for i := 0; i < src.Len(); i++ {
					copyWith(elem, dst.Index(i), src.Index(i))
				}
			}
		case reflect.Map:
			key := c.build(t.Key(), building)
			elem := c.build(t.Elem(), building)
			e.ok = key.ok && elem.ok && key.fn == nil
			e.fn = func(dst, src reflect.Value) {
				if src.IsNil() {
					dst.SetZero()
					return
				}
				n := reflect.MakeMapWithSize(t, src.Len())
				it := src.MapRange()
				for it.Next() {
					v := reflect.New(t.Elem()).Elem()
					copyWith(elem, v, it.Value())
					n.SetMapIndex(it.Key(), v)
				}
				dst.Set(n)
			}
		case reflect.Struct:
			var fields []int
			var fieldCopiers []*copierEntry
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				fe := c.build(f.Type, building)
				if !fe.ok {
					e.ok = false
					break
				}
				if fe.done && fe.fn == nil {
					continue // plain data, copied by the struct assignment
				}
				if !f.IsExported() {
					e.ok = false // an unexported reference we cannot copy
					break
				}
				fields = append(fields, i)
				fieldCopiers = append(fieldCopiers, fe)
			}
			if len(fields) > 0 {
				e.fn = func(dst, src reflect.Value) {
					dst.Set(src)
					for k, i := range fields {
						copyWith(fieldCopiers[k], dst.Field(i), src.Field(i))
					}
				}
			}
		default:
			// Interfaces, channels, functions, unsafe pointers.
			e.ok = false
		}
	}
	e.done = true
	delete(building, t)
	if len(building) == 0 {
		c.memo.store(t, e)
	}
	return e
}

func copyWith(e *copierEntry, dst, src reflect.Value) {
	if e.fn == nil {
		dst.Set(src)
		return
	}
	e.fn(dst, src)
}
