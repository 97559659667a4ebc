package gormcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"querycache.dev/keys"
)

// Mistakes in using the plugin are reported where they are made: options
// at db.Use, a mark at the statement it marks, a callback chain broken by
// another plugin at db.Use or, when it is broken later, at the first query
// (see "Mistakes the library catches" in the README).

// ErrNoPlugin is the error of a statement marked for caching on a
// *gorm.DB that has no gormcache plugin (errors.Is matches it).
var ErrNoPlugin = errors.New("gormcache: the query is marked for caching but its *gorm.DB has no gormcache plugin, so nothing would be cached; register it on this *gorm.DB (each gorm.Open needs its own) with db.Use(gormcache.New(cache))")

// ErrQueryCallbackReplaced is the error of a marked statement on a
// *gorm.DB where another plugin (such as github.com/go-gorm/caches) has
// replaced the query callback the plugin installed: that plugin's cache
// would serve results this plugin's invalidation never reaches.
var ErrQueryCallbackReplaced = errors.New("gormcache: another plugin replaced GORM's query callback (gorm:query or gorm:row) that gormcache installed (github.com/go-gorm/caches does); two query caches cannot share a *gorm.DB: remove the other one")

// fnError is an error of a named function: one prefix ("gormcache.CacheFor:
// ..."), still matching its sentinel with errors.Is.
type fnError struct {
	fn  string
	err error
}

func (e *fnError) Error() string {
	return e.fn + ": " + strings.TrimPrefix(e.err.Error(), "gormcache: ")
}
func (e *fnError) Unwrap() error { return e.err }

// errNoPlugin is ErrNoPlugin from the mark fn.
func errNoPlugin(fn string) error { return &fnError{fn: fn, err: ErrNoPlugin} }

// hasPlugin reports whether db has a gormcache plugin registered. A map
// read: the scopes that call it run on every marked statement.
func hasPlugin(db *gorm.DB) bool {
	if db == nil || db.Config == nil {
		return false
	}
	_, ok := db.Config.Plugins[pluginName]
	return ok
}

const pluginName = "querycache" // Plugin.Name

// checkTTL reports a negative TTL given to fn: it used to become the
// default TTL without a word, while a negative DefaultTTL is an error.
func checkTTL(fn string, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%s: the TTL is %v; use a positive duration, or 0 for the cache's DefaultTTL", fn, ttl)
	}
	return nil
}

// checkMarkOptions is checkTTL and a check of the declared tables: a name
// that spells no table ("", "a..b", a NUL byte) was dropped, and a
// statement whose tables its SQL does not show, declaring only such names,
// was cached depending on no table, never invalidated by a write.
func checkMarkOptions(fn string, o CacheOptions) error {
	errs := []error{checkTTL(fn, o.TTL)}
	for i, t := range o.Tables {
		if _, err := keys.Table(t); err != nil {
			errs = append(errs, fmt.Errorf("%s: CacheOptions.Tables[%d] %q: %w; declare the tables the statement reads, by name", fn, i, t, err))
		}
	}
	return errors.Join(errs...)
}

// initialized counts the plugins initialized in this process, so that a
// context mark made while there is none can say that nothing will be
// cached.
var (
	initialized  atomic.Int64
	noPluginWarn sync.Once
)

// warnIfNoPlugin warns once when a context is marked for caching while no
// gormcache plugin is registered on any *gorm.DB of the process: the
// context form cannot see the *gorm.DB it will reach, and a *gorm.DB
// without the plugin runs none of its code. (A mark reaching a *gorm.DB
// without the plugin while another one has it cannot be detected: say so
// in the docs.)
func warnIfNoPlugin() {
	if initialized.Load() == 0 {
		noPluginWarn.Do(func() {
			slog.Default().Warn("gormcache.WithCache: no gormcache plugin is registered on any *gorm.DB yet, so queries run with this context are not cached; register it with db.Use(gormcache.New(cache)) before marking queries")
		})
	}
}

// badMark makes a misconfigured context mark the statement's error. GORM's
// Row() drops statement errors, so it is also logged once.
func (p *Plugin) badMark(db *gorm.DB, err error) {
	_ = db.AddError(err)
	p.mis.badMark.Do(func() {
		if p.w.log != nil {
			p.w.log.Warn(stmtContext(db), "%v", err)
		}
	})
}

// misconfig is the plugin's state for reporting mistakes.
type misconfig struct {
	badMark  sync.Once
	verified atomic.Bool // the query callbacks are still this plugin's
	replaced sync.Once   // warned that another plugin replaced them
}

var errNilObserver = errors.New("gormcache.Observe: the function is nil; pass a func(ctx, *gormcache.Event), or leave the option out")

// optionError records a mistake in an option; db.Use returns it.
func (p *Plugin) optionError(err error) { p.err = errors.Join(p.err, err) }

// InvalidOption returns an Option that makes db.Use fail with err. It is
// for packages that build Options of their own (promcollector's
// Collector.Observe): a mistake found while building or applying one is
// then reported where the plugin is registered, as gormcache's own
// options' mistakes are, instead of surfacing later in a statement.
func InvalidOption(err error) Option {
	return func(p *Plugin) {
		if err == nil {
			err = errors.New("gormcache.InvalidOption: called with a nil error")
		}
		p.optionError(err)
	}
}

// checkOptions reports mistakes in the options given to New, at db.Use.
func (p *Plugin) checkOptions() error {
	var errs []error
	for _, m := range p.modelList {
		if m.ttl < 0 {
			errs = append(errs, fmt.Errorf("gormcache.CacheModelsFor: the TTL of %T is %v; use a positive duration, or 0 for the cache's DefaultTTL", m.model, m.ttl))
		}
		if m.model == nil {
			errs = append(errs, errors.New("gormcache.CacheModels: a model is nil; pass a model value or pointer, such as &User{}"))
		}
	}
	select {
	case <-p.cache.Done():
		errs = append(errs, errors.New("gormcache.New: the querycache.Cache is closed; create the plugin with an open cache (querycache.New), and close the cache after the *gorm.DB"))
	default:
	}
	return errors.Join(errs...)
}

// sameFunc reports whether a and b run the same code (for method values:
// the same method, whatever the receiver).
func sameFunc(a, b func(*gorm.DB)) bool {
	return a != nil && b != nil && reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}

// checkCallbacks runs at db.Use, before the plugin replaces GORM's query
// and row callbacks: if another plugin has already replaced them (another
// query cache), replacing them again would switch it off without a word.
// It also installs the guard that notices a replacement made later.
func (p *Plugin) checkCallbacks(db *gorm.DB) error {
	cb := db.Callback()
	if f := cb.Query().Get("gorm:query"); f != nil && !sameFunc(f, callbacks.Query) {
		return ErrQueryCallbackReplaced
	}
	if f := cb.Row().Get("gorm:row"); f != nil && !sameFunc(f, callbacks.RowQuery) {
		return ErrQueryCallbackReplaced
	}
	// GORM calls a callback's match function each time it compiles the
	// chain, that is after every Register, Replace or Remove: the guard
	// then checks the chain again at the next query.
	recheck := func(*gorm.DB) bool {
		p.mis.verified.Store(false)
		return true
	}
	return errors.Join(
		cb.Query().Match(recheck).Before("gorm:query").Register("querycache:guard", p.guard),
		cb.Row().Match(recheck).Before("gorm:row").Register("querycache:guard", p.guard),
	)
}

// guard runs before every query. After the callback chain changed, it
// checks that the plugin's query and row callbacks are still in place
// (one atomic load otherwise). When another plugin has replaced them,
// marked statements fail with ErrQueryCallbackReplaced and a warning is
// logged once.
func (p *Plugin) guard(db *gorm.DB) {
	if p.mis.verified.Load() {
		return
	}
	cb := db.Callback()
	if sameFunc(cb.Query().Get("gorm:query"), p.queryCallback) && sameFunc(cb.Row().Get("gorm:row"), p.rowCallback) {
		p.mis.verified.Store(true)
		return
	}
	p.mis.replaced.Do(func() {
		if p.w.log != nil {
			p.w.log.Warn(context.Background(), "%v", ErrQueryCallbackReplaced)
		}
	})
	if _, marked := p.markOf(db); marked {
		_ = db.AddError(ErrQueryCallbackReplaced)
	}
}
