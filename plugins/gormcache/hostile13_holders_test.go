package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// Probe: more than 32 write transactions open at once (openWrites turns
// its list into a map), each trying to store a value that depends on the
// table it wrote: every Set must be refused (ErrUncommitted) while its
// transaction is open, including while others are released concurrently.
func TestHostile13ManyOpenWriteTransactions(t *testing.T) {
	var pg dbKind
	for _, d := range databases {
		if d.name == "postgres" {
			pg = d
		}
	}
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	kv := e.cache.KV()
	ctx := context.Background()
	const n = 40
	var opened, checked sync.WaitGroup
	opened.Add(n)
	checked.Add(n)
	errs := make(chan error, 4*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Counter{N: i}).Error; err != nil {
					opened.Done()
					return err
				}
				opened.Done()
				opened.Wait()
				key := fmt.Sprintf("h13-%d", i)
				if err := kv.Set(ctx, key, []byte("dirty"), querycache.DependsOn("counters")); !errors.Is(err, querycache.ErrUncommitted) {
					errs <- fmt.Errorf("tx %d: Set inside a writing transaction returned %v, want ErrUncommitted", i, err)
				}
				checked.Done()
				if i%2 == 0 {
					checked.Wait()
					return errors.New("roll back")
				}
				return nil
			})
			_ = err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := kv.Set(ctx, "h13-after", []byte("v"), querycache.DependsOn("counters")); err != nil {
		t.Errorf("after every transaction ended, Set returned %v", err)
	}
}
