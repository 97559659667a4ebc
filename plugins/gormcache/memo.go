package gormcache

import (
	"sync"
	"sync/atomic"
)

// memo is a bounded concurrent memo belonging to one plugin. Once it holds
// max entries it stops remembering: later keys are recomputed on each use,
// which costs time, never memory. Memos live in the plugin (never in
// package variables), so a closed *gorm.DB's schemas and types are
// collected with its plugin.
type memo[K comparable, V any] struct {
	m   sync.Map
	n   atomic.Int64
	max int64
}

func (m *memo[K, V]) load(k K) (V, bool) {
	v, ok := m.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (m *memo[K, V]) store(k K, v V) {
	if m.n.Add(1) > m.max {
		m.n.Add(-1)
		return
	}
	if _, loaded := m.m.LoadOrStore(k, v); loaded {
		m.n.Add(-1)
	}
}
