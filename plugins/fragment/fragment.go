// Package fragment caches rendered html/template fragments, Django's
// {% cache %} tag done the querycache way: a fragment is stored against
// what its data was read from, not only for a TTL, so a write to any row
// or table it showed re-renders it at once, and a write to anything else
// leaves it cached.
//
// # How a fragment is computed
//
// A fragment is a named template plus a loader. The page calls
//
//	{{fragment $.Ctx "sidebar" .User.ID}}
//
// and the fragment cache, on a miss, calls the sidebar's loader with the
// request's context and the vary-on arguments (.User.ID), then executes
// the template named "sidebar" with what the loader returned. The loader
// makes its GORM queries with db.WithContext(ctx) and marks them
// cacheable (gormcache.Cacheable, WithCache, CacheModels); the context
// carries a querycache capture, so every query it makes (and every
// low-level value it reads through querycache.KV) records the version of
// what it read. The rendered HTML is stored against exactly those
// versions (querycache.KV.GetOrSetCaptured): a later write through the
// plugin to one of those rows or tables invalidates it.
//
// Because the template sees only what the loader returned, a fragment is
// a function of its name, its vary-on arguments and the database state it
// read. That is why the arguments are the loader's input, and why they
// are restricted to plain values (strings, numbers, booleans, byte
// slices): Django's cache tag lets the fragment also use the rest of the
// page's context, whose variations then silently share one entry.
//
// # What is not cached
//
//   - A loader that reads anything without the cache (a query not marked
//     cacheable, one inside a transaction; or anything the loader reports
//     with querycache.Untracked, e.g. a call to another service) still
//     renders, but the fragment is not stored: no version stands for what
//     it showed. A loader that calls another service can wrap the call in
//     querycache.Remember instead: the fragment is then cached, and since
//     such a value has only a TTL to make it expire, register the fragment
//     with a TTL no longer than the value's (querycache.WithTTL), or the
//     fragment shows it after it expired.
//   - A loader or template that fails: the error is returned to the page's
//     Execute (the page fails to render) and nothing is stored.
//
// # Escaping
//
// The fragment's template is executed by html/template, which escapes
// everything the loader's data puts in it; the fragment function returns
// that output as template.HTML, so the page does not escape it a second
// time. Nothing else is marked safe: the loader's data is never inserted
// without going through the fragment's template. Call the fragment
// function where HTML may appear (element content); in an attribute or a
// script html/template treats template.HTML as it always does (it strips
// tags or quotes it).
//
// The rendered HTML is stored under keys of the KV given to New that begin
// with "fragment\x00"; anything stored there is served as HTML. Give the
// fragments a KV of their own (querycache.NewKV with a Prefix) if other
// code writes arbitrary keys into the same KV.
//
// # Pages
//
// Fragments nest in captures: a fragment rendered inside a page cached by
// plugins/httpcache (or any querycache.WithCapture context) adds its
// dependencies to the page's, on a hit as on a miss, so the page is
// invalidated by a write to what the fragment showed even when the
// fragment came from the cache.
//
// # Deploys
//
// A fragment's key is its name and vary-on arguments, not its template:
// after a deploy that changes a fragment's markup, the old HTML is served
// until a write or its TTL, as with Django's tag. Give the new template a
// new version (querycache.WithVersion among Register's options) or name.
package fragment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"querycache.dev/querycache"
)

// Loader computes the data a fragment's template is executed with, from
// the vary-on arguments the page passed. Its database queries must use
// ctx (db.WithContext(ctx)) and be marked cacheable: the context records
// what they read, and the fragment is stored against that.
type Loader func(ctx context.Context, args ...any) (any, error)

// Options configures a Cache. The zero value is usable.
type Options struct {
	// FuncName is the name of the template function FuncMap returns.
	// Default "fragment".
	FuncName string
	// MaxArgs bounds the vary-on arguments of one call. Default 16.
	MaxArgs int
	// Namespace keeps this cache's fragments apart from those of other
	// fragment caches on the same KV (a public and an admin site that
	// both register "sidebar"): it is part of every key. Their keys are
	// then Cache.Key's, not the package's Key. Default "": none.
	Namespace string
}

// Cache renders registered fragments once per name, vary-on arguments
// and state of what they read, and serves them from a querycache.KV
// until a write invalidates them or their TTL ends. It is safe for
// concurrent use.
type Cache struct {
	kv   *querycache.KV
	opts Options

	mu    sync.RWMutex
	frags map[string]*frag
}

type frag struct {
	name string
	tmpl *template.Template
	load Loader
	opts []querycache.KVOption
	// ident (*[identLen]byte) is the start of a SHA-256 of what the fragment's HTML depends
	// on besides its data (identity): stored in front of its HTML and
	// checked on a hit, so that another fragment under the same name and
	// arguments is not shown (another fragment.Cache on the same KV, a
	// public and an admin site both registering "sidebar":
	// TestHostile45SameNameTwoCaches; or the template changed by a
	// deploy). The key stays Key(name, args...): two such caches replace
	// each other's fragments (correct, but neither is served from the
	// cache); give their fragments different names.
	ident atomic.Pointer[[identLen]byte]
	// The identity is computed at Register, but html/template lets
	// templates be added to a set until it first executes: partials
	// parsed after Register were not in it, and two sites whose fragment
	// differed only in such a partial served each other's HTML
	// (TestHostile49SubTemplateParsedAfterRegister). So Render recomputes
	// it when the set has templates it has not seen, until this fragment
	// first executes (the set can then no longer change).
	mu       sync.Mutex
	texts    map[*template.Template]tmplText // the set's templates the identity saw
	executed atomic.Bool
}

// tmplText is a template's text as the identity first saw it.
type tmplText struct {
	text   string
	parsed bool // it had a tree
}

// identLen is the length of frag.ident, in front of a stored fragment.
const identLen = 8

// New returns a fragment cache storing its fragments in kv (their
// lifetime is kv's TTL unless Register says otherwise).
func New(kv *querycache.KV, opts Options) (*Cache, error) {
	if kv == nil {
		return nil, errors.New("fragment.New: the KV is nil; pass cache.KV() or one made with querycache.NewKV")
	}
	if err := kv.CheckOptions(); err != nil {
		return nil, fmt.Errorf("fragment.New: %w", err) // &querycache.KV{}: Render panicked
	}
	if opts.FuncName == "" {
		opts.FuncName = "fragment"
	}
	if !isIdentifier(opts.FuncName) {
		// template.Funcs panics on it, in the application's setup.
		return nil, fmt.Errorf("fragment.New: Options.FuncName %q is not a template function name; use letters, digits and '_', not starting with a digit", opts.FuncName)
	}
	if opts.MaxArgs < 0 {
		return nil, fmt.Errorf("fragment.New: Options.MaxArgs is %d; use a positive number, or 0 for 16", opts.MaxArgs)
	}
	if opts.MaxArgs == 0 {
		opts.MaxArgs = 16
	}
	return &Cache{kv: kv, opts: opts, frags: make(map[string]*frag)}, nil
}

// Register declares the fragment name: its HTML is what t's template
// named name renders (t.ExecuteTemplate(w, name, data)) with the data load
// returns. t is usually the page's own template set, parsed with
// FuncMap, in which {{define "name"}} gives the fragment's markup.
//
// opts apply to every store of the fragment: querycache.WithTTL for its
// lifetime, querycache.DependsOn for tables its loader reads without the
// cache's knowledge but which should invalidate it, querycache.WithVersion.
func (c *Cache) Register(name string, t *template.Template, load Loader, opts ...querycache.KVOption) error {
	switch {
	case name == "":
		return errors.New("fragment: Register needs a name")
	case t == nil:
		return fmt.Errorf("fragment: Register(%q): the template is nil", name)
	case t.Lookup(name) == nil:
		return fmt.Errorf("fragment: Register(%q): the template set %q has no template named %q; add {{define %q}}...{{end}}", name, t.Name(), name, name)
	case load == nil:
		return fmt.Errorf("fragment: Register(%q): the loader is nil", name)
	}
	if err := c.kv.CheckOptions(opts...); err != nil {
		// Kept, the mistake failed (or, a nil option, panicked) every
		// Render of the fragment.
		return fmt.Errorf("fragment: Register(%q): %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.frags[name]; ok {
		return fmt.Errorf("fragment: Register(%q): a fragment of that name is registered already", name)
	}
	fr := &frag{name: name, tmpl: t, load: load, opts: opts}
	fr.refresh()
	c.frags[name] = fr
	return nil
}

// currentIdent returns the fragment's identity, recomputed first if
// templates were added to its set since it was computed
// (TestHostile49SubTemplateParsedAfterRegister). Once the fragment has
// executed, its set cannot change and this is one atomic load.
func (f *frag) currentIdent() [identLen]byte {
	if !f.executed.Load() {
		f.refresh()
	}
	return *f.ident.Load()
}

// refresh recomputes the identity if the set has templates it was not
// computed from. Only the set's membership is compared, and only a new
// template's tree is read: executing a template escapes its tree (and
// those it calls) in place, under the set's lock, which a read from here
// cannot take; a tree is read once, before anything can execute it in a
// correct program, or when it was added after Register (which must then
// have happened before the set first executed). So a template redefined
// in the set after Register, under a name it had (a block overridden by
// a later Parse), is not seen: parse a set completely before registering
// its fragments.
func (f *frag) refresh() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.executed.Load() {
		return
	}
	ts := f.tmpl.Templates() // under the set's lock
	if f.texts != nil && len(ts) == len(f.texts) && !slices.ContainsFunc(ts, func(t *template.Template) bool {
		_, ok := f.texts[t]
		return !ok
	}) {
		return
	}
	texts := make(map[*template.Template]tmplText, len(ts))
	for _, t := range ts {
		tt, ok := f.texts[t]
		if !ok && t.Tree != nil && t.Tree.Root != nil {
			tt = tmplText{text: t.Tree.Root.String(), parsed: true}
		}
		texts[t] = tt
	}
	f.texts = texts
	id := identity(f.name, ts, texts, f.load)
	f.ident.Store(&id)
}

// refPC is a function of this package's, from which the entry of a
// generic loader's instance is counted (identity).
var refPC = reflect.ValueOf(Key).Pointer()

// identity names what a fragment's HTML depends on besides its loader's
// data: its name, every template of its set (the one named calls others:
// TestHostile46SubTemplateNotInIdentity; texts gives each tree's text)
// and its loader's function name (two sites can render the same template
// text from different data: TestHostile46SameTemplateTextDifferentLoaders).
// Function names, not addresses, so that processes of one build agree; two
// closures of one function literal have one name, and are not told apart.
// Every instance of a generic function has one name too ("f[...]"): for
// those the distance of the instance's entry from one of this package's
// functions is added, which tells instances apart and is the same in
// every process of one build (TestHostile49GenericLoaderInstancesNotToldApart).
func identity(name string, ts []*template.Template, texts map[*template.Template]tmplText, load Loader) [identLen]byte {
	h := sha256.New()
	w := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	w(name)
	pc := reflect.ValueOf(load).Pointer()
	if fn := runtime.FuncForPC(pc); fn != nil {
		w(fn.Name())
		if strings.Contains(fn.Name(), "[...]") {
			w(strconv.FormatInt(int64(fn.Entry())-int64(refPC), 10))
		}
	}
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b *template.Template) int { return strings.Compare(a.Name(), b.Name()) })
	for _, tt := range ts {
		w(tt.Name())
		if t := texts[tt]; t.parsed {
			w(t.text)
		}
	}
	var id [identLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

// FuncMap returns the template function (named Options.FuncName,
// "fragment" by default) to add to the page's templates with Funcs
// before they are parsed:
//
//	{{fragment $.Ctx "sidebar" .User.ID}}
//
// Its arguments are the request's context (the page's data must carry
// it), the fragment's name and its vary-on arguments. It returns the
// fragment's HTML, or an error that stops the page's execution.
func (c *Cache) FuncMap() template.FuncMap {
	return template.FuncMap{c.opts.FuncName: c.Render}
}

// Render returns the HTML of fragment name for the vary-on arguments
// args: from the cache when it holds a rendering that no write has
// invalidated since, otherwise by calling the fragment's loader with ctx
// and args and executing its template, then storing the result against
// what the loader read (unless it read something without the cache).
func (c *Cache) Render(ctx context.Context, name string, args ...any) (template.HTML, error) {
	if ctx == nil {
		return "", fmt.Errorf("fragment %q: the context is nil; pass the request's context (e.g. {{fragment $.Ctx %q ...}})", name, name)
	}
	c.mu.RLock()
	f := c.frags[name]
	c.mu.RUnlock()
	if f == nil {
		return "", fmt.Errorf("fragment %q is not registered (Cache.Register)", name)
	}
	if len(args) > c.opts.MaxArgs {
		return "", fmt.Errorf("fragment %q: %d vary-on arguments; at most %d", name, len(args), c.opts.MaxArgs)
	}
	key, err := c.Key(name, args...)
	if err != nil {
		return "", err
	}
	ident := f.currentIdent()
	fill := func(ctx context.Context) ([]byte, error) {
		data, err := f.load(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("fragment %q: loader: %w", name, err)
		}
		buf := bytes.NewBuffer(append(make([]byte, 0, 512), ident[:]...))
		if !f.executed.Load() {
			// From here html/template refuses to parse into the set (even
			// if the execution fails): the identity is final, and no
			// refresh may read the trees this execution escapes.
			f.mu.Lock()
			f.executed.Store(true)
			f.mu.Unlock()
		}
		if err := f.tmpl.ExecuteTemplate(buf, name, data); err != nil {
			return nil, fmt.Errorf("fragment %q: %w", name, err)
		}
		return buf.Bytes(), nil
	}
	b, _, err := c.kv.GetOrSetCaptured(ctx, key, fill, f.opts...)
	if err == nil && !own(b, ident) {
		// Another template's rendering under this key: a miss, whose
		// render replaces it; if another one replaced it again meanwhile,
		// ours is rendered and not stored.
		if _, err = c.kv.Delete(ctx, key); err == nil {
			b, _, err = c.kv.GetOrSetCaptured(ctx, key, fill, f.opts...)
		}
		if err == nil && !own(b, ident) {
			querycache.Untracked(ctx, "fragment_contended") // not stored: a page showing it must not be either
			b, err = fill(ctx)
		}
	}
	if err != nil {
		return "", err
	}
	// What html/template wrote after the ident: escaped HTML, safe to
	// insert as is.
	return template.HTML(b[identLen:]), nil
}

// own reports whether b is a rendering of the fragment whose identity is
// ident.
func own(b []byte, ident [identLen]byte) bool {
	return len(b) >= identLen && bytes.Equal(b[:identLen], ident[:])
}

// Key returns the querycache.KV key a fragment is stored under:
// "fragment", the name and a SHA-256 of an unambiguous encoding of the
// vary-on arguments, each with its type (so "1" and 1, or ("a:b") and
// ("a", "b"), are different fragments). Only plain values are accepted:
// booleans, integers, floats, strings and byte slices, and named types
// of those; anything else (a struct, a pointer, nil) is an error, since
// no encoding of it is certain to tell two different values apart.
func Key(name string, args ...any) (string, error) { return namespacedKey("", name, args...) }

// Key is the package's Key for this cache's fragments: with its
// Options.Namespace, if any, in the key.
func (c *Cache) Key(name string, args ...any) (string, error) {
	return namespacedKey(c.opts.Namespace, name, args...)
}

func namespacedKey(ns, name string, args ...any) (string, error) {
	h := sha256.New()
	var buf []byte
	buf = appendBytes(buf, []byte(name))
	for i, a := range args {
		var err error
		buf, err = appendArg(buf, a)
		if err != nil {
			return "", fmt.Errorf("fragment %q: vary-on argument %d: %w", name, i+1, err)
		}
	}
	h.Write(buf)
	prefix := "fragment\x00"
	if ns != "" {
		// Never a key without one (the byte after "fragment" differs),
		// and the namespace's length tells where it ends.
		prefix = "fragment\x01" + strconv.Itoa(len(ns)) + "\x00" + ns + "\x00"
	}
	return prefix + name + "\x00" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendArg appends the type of a (its package path and name for a named
// type) and its value, each length-prefixed.
func appendArg(b []byte, a any) ([]byte, error) {
	if a == nil {
		return nil, errors.New("nil; pass a plain value (an ID, a string)")
	}
	v := reflect.ValueOf(a)
	t := v.Type()
	b = appendBytes(b, []byte(t.PkgPath()+"."+t.String()))
	var val []byte
	switch t.Kind() {
	case reflect.Bool:
		if v.Bool() {
			val = []byte{1}
		} else {
			val = []byte{0}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		val = binary.BigEndian.AppendUint64(nil, uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		val = binary.BigEndian.AppendUint64(nil, v.Uint())
	case reflect.Float32, reflect.Float64:
		val = binary.BigEndian.AppendUint64(nil, math.Float64bits(v.Float()))
	case reflect.String:
		val = []byte(v.String())
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Uint8 {
			return nil, fmt.Errorf("a %s; pass plain values (strings, numbers, booleans, []byte)", t)
		}
		val = v.Bytes()
	default:
		return nil, fmt.Errorf("a %s; pass plain values (strings, numbers, booleans, []byte): the loader computes the fragment's data from them", t)
	}
	return appendBytes(b, val), nil
}

// isIdentifier reports whether s may name a template function (as
// text/template's Funcs requires).
func isIdentifier(s string) bool {
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return s != ""
}
