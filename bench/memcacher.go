package main

import (
	"context"
	"sync"

	"querycache.dev/bench/internal/caches"
)

// memoryCacher is go-gorm/caches' memory Cacher as its README gives it:
// a sync.Map of the marshalled query results, emptied by any write.
type memoryCacher struct {
	mu    sync.RWMutex
	store *sync.Map
}

func newMemoryCacher() *memoryCacher { return &memoryCacher{store: &sync.Map{}} }

func (c *memoryCacher) m() *sync.Map {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.store
}

func (c *memoryCacher) Get(_ context.Context, key string, q *caches.Query[any]) (*caches.Query[any], error) {
	val, ok := c.m().Load(key)
	if !ok {
		return nil, nil
	}
	if err := q.Unmarshal(val.([]byte)); err != nil {
		return nil, err
	}
	return q, nil
}

func (c *memoryCacher) Store(_ context.Context, key string, val *caches.Query[any]) error {
	res, err := val.Marshal()
	if err != nil {
		return err
	}
	c.m().Store(key, res)
	return nil
}

func (c *memoryCacher) Invalidate(context.Context) error {
	c.mu.Lock()
	c.store = &sync.Map{}
	c.mu.Unlock()
	return nil
}
