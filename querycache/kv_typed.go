package querycache

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The typed helpers store a value of any type with the KV's codec (CBOR
// by default); []byte and string values are stored as they are, so that
// GetAs[string] reads what Set stored and Incr counts what SetAs[string]
// stored as decimal text.

func encodeAs[T any](kv *KV, v T) (byte, []byte, error) {
	switch x := any(v).(type) {
	case []byte:
		return kindBytes, x, nil
	case string:
		return kindBytes, []byte(x), nil
	}
	b, err := kv.codec.Marshal(v)
	if err != nil {
		return 0, nil, fmt.Errorf("querycache: encoding a %T: %w", v, err)
	}
	return kindCodec, b, nil
}

func decodeAs[T any](kv *KV, v kvValue) (T, error) {
	var out T
	switch p := any(&out).(type) {
	case *[]byte:
		if v.kind == kindBytes {
			*p = slices.Clone(v.value)
			return out, nil
		}
	case *string:
		if v.kind == kindBytes {
			*p = string(v.value)
			return out, nil
		}
	default:
		if v.kind == kindBytes {
			return out, fmt.Errorf("querycache: the value is bytes (stored by Set), not a %T", out)
		}
	}
	if err := kv.codec.Unmarshal(v.value, &out); err != nil {
		return out, fmt.Errorf("querycache: decoding a %T: %w", out, err)
	}
	return out, nil
}

// GetAs is Get for a value stored by SetAs, AddAs or Remember: it decodes
// it into a T. A value that does not decode into a T is an error (and not
// a hit).
func GetAs[T any](ctx context.Context, kv *KV, key string, opts ...KVOption) (T, bool, error) {
	v, ok, err := kv.get(ctx, key, opts)
	if !ok {
		var zero T
		return zero, false, err
	}
	out, err := decodeAs[T](kv, v)
	if err != nil {
		var zero T
		return zero, false, err
	}
	return out, true, nil
}

// SetAs is Set for a value of any type, encoded with the KV's codec.
func SetAs[T any](ctx context.Context, kv *KV, key string, v T, opts ...KVOption) error {
	kind, b, err := encodeAs(kv, v)
	if err != nil {
		return err
	}
	return kv.set(ctx, key, kind, b, opts)
}

// AddAs is Add for a value of any type, encoded with the KV's codec.
func AddAs[T any](ctx context.Context, kv *KV, key string, v T, opts ...KVOption) (bool, error) {
	kind, b, err := encodeAs(kv, v)
	if err != nil {
		return false, err
	}
	return kv.add(ctx, key, kind, b, opts)
}

// Remember returns the value cached under key, or computes it with fn,
// caches it for ttl (0: the KV's TTL) and returns it: GetOrSet for values
// of any type. Give the value's dependencies (DependsOn,
// DependsOnObject) and it is invalidated by the writes that change them;
// their versions are read before fn runs.
//
// A value under key that does not decode into a T (stored by another type)
// is computed again and replaced. An error of fn is returned and nothing
// is cached.
func Remember[T any](ctx context.Context, kv *KV, key string, ttl time.Duration, fn func(ctx context.Context) (T, error), opts ...KVOption) (_ T, err error) {
	defer untrackFailure(ctx, &err)
	var zero T
	if fn == nil {
		fn = func(context.Context) (T, error) { return zero, errNilFill } // a hit needs none
	}
	if ttl < 0 {
		// It used to cache for the KV's TTL: a TTL computed from a
		// deadline already past cached for longer instead of not at all.
		return zero, fmt.Errorf("querycache.Remember: the TTL is %v; use a positive duration, or 0 for the KV's TTL", ttl)
	}
	if ttl > 0 {
		opts = append(opts[:len(opts):len(opts)], WithTTL(ttl))
	}
	var computed T
	ran := false // fn ran in this call (as the flight's leader, or alone)
	var kind byte = kindCodec
	switch any(computed).(type) {
	case []byte, string:
		kind = kindBytes
	}
	fill := func(ctx context.Context) ([]byte, error) {
		v, err := fn(ctx)
		ran = true
		if err != nil {
			return nil, err
		}
		computed = v
		_, b, err := encodeAs(kv, v)
		return b, err
	}
	// A stored value of another type is a miss: refilled against the
	// versions read before fn, as any miss.
	valid := func(v kvValue) bool {
		_, err := decodeAs[T](kv, v)
		return err == nil
	}
	v, hit, err := kv.getOrSet(ctx, key, kind, fill, opts, valid)
	if err != nil {
		var zero T
		return zero, err
	}
	if ran {
		return computed, nil
	}
	out, err := decodeAs[T](kv, v)
	if err != nil && !hit {
		// We joined the fill of a Remember of another type under this
		// key: compute ours, and leave the stored value to its leader.
		return fn(ctx)
	}
	return out, err
}
