// Command tracing shows what querycache adds to the query spans of
// gorm.io/plugin/opentelemetry. It opens SQLite in a temporary directory,
// registers the tracing plugin and the querycache plugin, runs a miss, a
// hit, a write, the stale miss after it and a query that is not marked,
// and prints each query span with its attributes. The spans are recorded
// in memory by the OpenTelemetry SDK's tracetest.SpanRecorder; a real
// program gives the tracing plugin a TracerProvider that exports them.
//
//	go run ./examples/tracing
//
// The two plugins may be registered in either order; -cache-first
// registers querycache first and prints the same attributes:
//
//	go run ./examples/tracing -cache-first
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/opentelemetry/tracing"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Author is the demo's model.
type Author struct {
	ID   uint
	Name string
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tracing:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("tracing", flag.ContinueOnError)
	cacheFirst := fs.Bool("cache-first", false, "register the querycache plugin before the tracing plugin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "querycache-tracing-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := open(filepath.Join(dir, "tracing.db"), *cacheFirst)
	if err != nil {
		return err
	}
	defer d.close()
	if *cacheFirst {
		fmt.Fprintln(w, "plugins: querycache, then gorm.io/plugin/opentelemetry/tracing")
	} else {
		fmt.Fprintln(w, "plugins: gorm.io/plugin/opentelemetry/tracing, then querycache")
	}
	steps, err := d.script(context.Background())
	if err != nil {
		return err
	}
	for i, s := range steps {
		fmt.Fprintf(w, "\n%d. %s: %s (FromCache %v)\n", i+1, s.name, s.call, s.fromCache)
		for _, sp := range s.spans {
			printSpan(w, sp)
		}
	}
	return nil
}

// demo is a *gorm.DB on SQLite with both plugins, and the spans they made.
type demo struct {
	db    *gorm.DB
	cache *querycache.Cache
	tp    *sdktrace.TracerProvider
	rec   *tracetest.SpanRecorder
}

// open opens the database at path, creates the authors table with one
// author, and registers the tracing plugin and querycache's, the
// tracing plugin first unless cacheFirst.
func open(path string, cacheFirst bool) (*demo, error) {
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, err
	}
	if err := db.AutoMigrate(&Author{}); err != nil {
		return nil, err
	}
	if err := db.Create(&Author{ID: 1, Name: "Ann"}).Error; err != nil {
		return nil, err
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 16 << 20})})
	if err != nil {
		return nil, err
	}
	d := &demo{db: db, cache: cache, rec: tracetest.NewSpanRecorder()}
	d.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(d.rec))
	plugins := []gorm.Plugin{
		// WithoutMetrics: the demo has no meter provider to report the
		// connection pool's statistics to.
		tracing.NewPlugin(tracing.WithTracerProvider(d.tp), tracing.WithoutMetrics()),
		gormcache.New(cache),
	}
	if cacheFirst {
		plugins[0], plugins[1] = plugins[1], plugins[0]
	}
	for _, p := range plugins {
		if err := db.Use(p); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

func (d *demo) close() {
	_ = d.tp.Shutdown(context.Background())
	if sqlDB, err := d.db.DB(); err == nil {
		_ = sqlDB.Close()
	}
	d.cache.Close()
}

// step is one call of the script and the spans that ended during it.
type step struct {
	name, call string
	fromCache  bool
	// parent is the span the call ran under, started by the script (as
	// an HTTP handler's span would be); spans are the tracing plugin's,
	// its children.
	parent trace.SpanContext
	spans  []sdktrace.ReadOnlySpan
	// left is the span in the statement's context after the call: the
	// parent's, once the tracing plugin has put its context back.
	left trace.SpanContext
}

// script runs the demo's calls, each under a span of its own.
func (d *demo) script(ctx context.Context) ([]step, error) {
	calls := []struct {
		name, call string
		f          func(db *gorm.DB) *gorm.DB
	}{
		{"miss", "db.Scopes(gormcache.Cacheable()).First(&author, 1)", func(db *gorm.DB) *gorm.DB {
			return db.Scopes(gormcache.Cacheable()).First(&Author{}, 1)
		}},
		{"hit", "the same again", func(db *gorm.DB) *gorm.DB {
			return db.Scopes(gormcache.Cacheable()).First(&Author{}, 1)
		}},
		{"write", `db.Model(&Author{ID: 1}).Update("name", "Bea")`, func(db *gorm.DB) *gorm.DB {
			return db.Model(&Author{ID: 1}).Update("name", "Bea")
		}},
		{"stale miss", "the cached query after the write", func(db *gorm.DB) *gorm.DB {
			return db.Scopes(gormcache.Cacheable()).First(&Author{}, 1)
		}},
		{"not marked", "db.First(&author, 1)", func(db *gorm.DB) *gorm.DB {
			return db.First(&Author{}, 1)
		}},
	}
	tracer := d.tp.Tracer("querycache.dev/examples/tracing")
	var steps []step
	for _, c := range calls {
		sctx, span := tracer.Start(ctx, c.name)
		seen := len(d.rec.Ended())
		tx := c.f(d.db.WithContext(sctx))
		span.End()
		if tx.Error != nil {
			return nil, fmt.Errorf("%s: %w", c.name, tx.Error)
		}
		s := step{
			name: c.name, call: c.call, fromCache: gormcache.FromCache(tx),
			parent: span.SpanContext(),
			left:   trace.SpanFromContext(tx.Statement.Context).SpanContext(),
		}
		for _, sp := range d.rec.Ended()[seen:] {
			if sp.SpanContext().SpanID() != span.SpanContext().SpanID() {
				s.spans = append(s.spans, sp)
			}
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// printSpan prints a span's name and its attributes, sorted by key.
func printSpan(w io.Writer, sp sdktrace.ReadOnlySpan) {
	fmt.Fprintf(w, "   span %q\n", sp.Name())
	attrs := sp.Attributes()
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
	width := 0
	for _, kv := range attrs {
		width = max(width, len(kv.Key))
	}
	for _, kv := range attrs {
		fmt.Fprintf(w, "     %s%s = %s\n", kv.Key, strings.Repeat(" ", width-len(kv.Key)), kv.Value.Emit())
	}
}
