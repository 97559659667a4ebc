// Package httpcache is a page cache for net/http that invalidates itself:
// Django's cache_page (per route, Cache.Page) and its site-wide cache
// middleware (Cache.Middleware), built on querycache's dependency capture.
//
// While a handler renders a page, every cached GORM query it makes and
// every low-level value it reads records, on the request's context, the
// versions of the tables and rows it read. The page is stored against
// exactly those versions, with the tokens they had when read, so a GORM
// write to anything the page showed invalidates the page at once: no TTL
// wait, no key to delete. The TTL only bounds how long an unread page
// keeps memory.
//
// # The handler must query with the request's context
//
// Capture works through the context. A handler behind this middleware
// must make its queries with the request's context:
//
//	db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Find(&articles)
//
// A query made with another context (context.Background(), a context kept
// from elsewhere) is invisible to the page cache: the page would be stored
// without depending on it, and a write to what that query read would not
// invalidate the page. Reads the plugin makes without the cache (queries
// not marked cacheable, queries inside a transaction) are seen and counted
// as untracked: such a page is sent but not stored (CacheUntracked stores
// it for its TTL anyway).
//
// # What is cached
//
// A page is keyed by the scheme, host, path (the one the layer sees and
// the one the client sent, which differ behind http.StripPrefix or
// another rewrite) and query string (its
// parameters sorted by name, the values of one name kept in order), the
// user when PerUser is set, and the values of the request headers the
// response names in Vary (the list is remembered per URL, as Django does).
// HEAD is answered from GET's entry. Only GET and HEAD requests without
// a body or a Range header are looked up; a request that carries credentials (an Authorization or a
// Cookie header) is not, unless PerUser names its user.
//
// A response is stored only when its status is one of Statuses (200 by
// default), it sets no cookie, its Cache-Control says none of private,
// no-store, no-cache or max-age=0, its Vary is not "*", it has no
// trailers, its body is at most MaxBodyBytes, and the handler neither
// flushed it (streaming: the response then goes to the client as it is
// written) nor hijacked the connection. Such a response is sent as the
// handler made it.
//
// Every response that may be stored gets a strong ETag (a hash of the
// body, unless the handler set its own) and If-None-Match is answered with
// 304, on hits and on fresh renders. The X-Querycache header says "hit",
// "miss" or "bypass"; X-Querycache-Reason says why a page was not looked
// up or not stored.
//
// A client's Cache-Control: no-cache is ignored by default: pages are
// never stale with respect to the writes the cache sees, and a request
// header must not let any client send every request to the database.
// HonorClientNoCache makes such requests render afresh, without storing.
//
// Per route and site-wide together: a Page (or a route's Middleware)
// inside the site-wide Middleware keeps entries of its own (its TTL and
// options), and the outer page depends on everything the inner one read,
// hit or render, so one write invalidates both.
//
// Routers: Middleware has the standard signature, so it wraps a ServeMux
// (site-wide), goes in chi's r.Use or r.With, or in any router taking
// func(http.Handler) http.Handler. For gin, the module
// querycache.dev/plugins/httpcache/ginpage adapts it to a gin.HandlerFunc.
//
// Concurrent misses of one page in a process run the handler once and
// share its response; that is correct only because a page is keyed by
// everything it may vary on (a response that varies on something else
// must say so in Vary, or carry Cache-Control: private). Headers a proxy
// sets, such as X-Forwarded-Host and X-Forwarded-Proto, are not in the
// key either: a handler that builds links from them must name them in
// Vary, or a client that sends its own would have its page stored for
// everyone. A render whose query failed, that read without the cache, or
// whose request was cancelled is not stored and not shared with the
// requests that joined it (each renders its own), and neither is a
// render that panicked: only its own request sees the panic. A render
// that streams (or grows too large to store) stops being shared when it
// starts going to its client: the requests waiting for it render their
// own at once, instead of waiting for the end of a stream that may last
// as long as its client stays.
package httpcache

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"querycache.dev/querycache"
)

// HeaderName is the response header that says how the page cache answered:
// "hit", "miss" or "bypass".
const HeaderName = "X-Querycache"

// ReasonHeader is the response header that says why a page was not looked
// up ("method", "authenticated", ...) or not stored ("set_cookie",
// "private", "untracked", ...).
const ReasonHeader = "X-Querycache-Reason"

// DefaultMaxBodyBytes is the largest body stored when MaxBodyBytes is not
// given.
const DefaultMaxBodyBytes = 1 << 20

// maxVary bounds the headers a page may vary on.
const maxVary = 16

// Cache is a page cache on a querycache.Cache. Create it with New; make
// handlers with Middleware (site-wide, or per route) and Page (per
// route, Django's cache_page). It is safe for concurrent use.
type Cache struct {
	qc   *querycache.Cache
	kv   *querycache.KV
	base config
}

type config struct {
	ttl            time.Duration
	maxBody        int
	perUser        func(*http.Request) (string, bool)
	statuses       []int
	cacheUntracked bool
	clientNoCache  bool
	err            error
}

// Option configures a Cache (New) or one route (Middleware, Page), whose
// options are applied after the Cache's.
type Option func(*config)

// TTL sets how long a stored page lives when no write invalidates it
// before. Default: the querycache.Cache's DefaultTTL.
func TTL(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 && c.err == nil {
			c.err = fmt.Errorf("httpcache.TTL(%v): use a positive duration", d)
		}
		c.ttl = d
	}
}

// MaxBodyBytes sets the largest body stored (default DefaultMaxBodyBytes).
// A larger response is sent to the client as the handler writes it and
// not stored. The querycache.Cache's MaxEntryBytes applies too.
func MaxBodyBytes(n int) Option {
	return func(c *config) {
		if n <= 0 && c.err == nil {
			c.err = fmt.Errorf("httpcache.MaxBodyBytes(%d): use a positive size", n)
		}
		c.maxBody = n
	}
}

// PerUser caches pages of authenticated requests, one per user: user
// returns the id of the request's user (from its session cookie, its
// token, ...) and ok; the id becomes part of the page's key, so no user is
// ever served another's page. A request with credentials for which user
// reports !ok is not looked up (it may be a user the function does not
// know); one without credentials is cached as anonymous.
func PerUser(user func(r *http.Request) (id string, ok bool)) Option {
	return func(c *config) { c.perUser = user }
}

// Statuses sets the response statuses that may be stored (default 200
// only, as Django). Allowed: 200, 203, 204, 300, 301, 308, 404, 405, 410,
// 414, 501 (the statuses HTTP calls cacheable by default).
func Statuses(codes ...int) Option {
	return func(c *config) {
		if len(codes) == 0 && c.err == nil {
			// Accepted, it stored no page at all, without a word.
			c.err = errors.New("httpcache.Statuses: no status given; name the statuses to store, such as Statuses(200, 404), or leave the option out for 200 only")
		}
		for _, s := range codes {
			switch s {
			case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
			default:
				if c.err == nil {
					c.err = fmt.Errorf("httpcache.Statuses: %d is not a status HTTP lets a cache store by default", s)
				}
			}
		}
		c.statuses = slices.Clone(codes)
	}
}

// CacheUntracked stores pages whose handler read something without the
// cache (a query not marked cacheable, a query in a transaction, ...) for
// their TTL only, as Django's cache_page does: NO write invalidates such a
// page, not even one to what its cached queries read, so it may be stale
// until its TTL ends. Use it only with a TTL you can accept as staleness.
// Pages whose reads were all tracked are unaffected.
func CacheUntracked() Option {
	return func(c *config) { c.cacheUntracked = true }
}

// HonorClientNoCache makes a request whose Cache-Control says no-cache or
// no-store (or whose Pragma says no-cache) bypass the cache: the handler
// renders the page, which is neither served from nor stored in the cache.
// By default such request headers are ignored (see the package comment).
func HonorClientNoCache() Option {
	return func(c *config) { c.clientNoCache = true }
}

// New returns a page cache storing its pages in c's store, under the
// low-level API's prefix "page". opts are the defaults of every route.
func New(c *querycache.Cache, opts ...Option) (*Cache, error) {
	if c == nil {
		return nil, errors.New("httpcache.New: the cache is nil; pass the *querycache.Cache querycache.New returned")
	}
	kv, err := querycache.NewKV(c, querycache.KVOptions{Prefix: "page"})
	if err != nil {
		return nil, fmt.Errorf("httpcache.New: %w", err)
	}
	base := config{maxBody: DefaultMaxBodyBytes, statuses: []int{http.StatusOK}}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("httpcache.New: option %d of %d is nil; leave it out, or pass one such as httpcache.TTL(time.Minute)", i+1, len(opts))
		}
		o(&base)
	}
	if base.err != nil {
		return nil, base.err
	}
	return &Cache{qc: c, kv: kv, base: base}, nil
}

// Middleware returns the page cache as middleware, for the standard mux
// (wrap the mux: site-wide, Django's cache middleware), chi (r.Use, or
// r.With per route) or any router taking func(http.Handler) http.Handler.
// opts apply to the pages of this middleware only. It panics if an option
// is invalid (nil, a TTL or size that is not positive, a status that may
// not be stored), and the middleware panics if it is given a nil handler
// (as http.ServeMux.Handle does): those are programming errors, found at
// start-up, where a nil handler used to panic in every request.
func (pc *Cache) Middleware(opts ...Option) func(http.Handler) http.Handler {
	cfg := pc.base
	cfg.statuses = slices.Clone(cfg.statuses)
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("httpcache: Middleware option %d of %d is nil", i+1, len(opts)))
		}
		o(&cfg)
	}
	if cfg.err != nil {
		panic(cfg.err)
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("httpcache: the handler to cache is nil")
		}
		return &layer{pc: pc, cfg: cfg, next: next}
	}
}

// Page caches one route's pages for ttl (Django's cache_page(ttl)). It
// panics as Middleware does: on an invalid option or a nil h.
func (pc *Cache) Page(ttl time.Duration, h http.Handler, opts ...Option) http.Handler {
	return pc.Middleware(append([]Option{TTL(ttl)}, opts...)...)(h)
}

// layer is one page cache in front of one handler.
type layer struct {
	pc   *Cache
	cfg  config
	next http.Handler
}

// depthKey counts the page caches a request went through: a page cache
// inside another keys its pages apart (and does not wait on the outer
// one's fill of the same URL).
type depthKey struct{}

func (l *layer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	depth, _ := r.Context().Value(depthKey{}).(int)
	ctx := context.WithValue(r.Context(), depthKey{}, depth+1)

	user, why := l.eligible(r)
	var query string
	if why == "" {
		var ok bool
		if query, ok = canonicalQuery(r.URL.RawQuery); !ok {
			why = "query"
		}
	}
	if why != "" {
		w.Header().Set(HeaderName, "bypass")
		w.Header().Set(ReasonHeader, why)
		l.next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	base := baseKey(r, query, user, depth)
	vary, known := l.varyList(ctx, base)
	key := pageKey(base, vary, r)

	if r.Method == http.MethodHead {
		if b, ok, err := l.pc.kv.Get(ctx, key); err == nil && ok {
			rec, err := decodeRecord(b)
			if err == nil && !rec.expired(time.Now()) {
				l.serve(w, r, rec, "hit", "")
				return
			}
			_, _ = l.pc.kv.Delete(ctx, key) // garbage or past its lifetime: a miss
		}
		// A HEAD response has no body to store: the handler answers it.
		w.Header().Set(HeaderName, "miss")
		w.Header().Set(ReasonHeader, "head")
		l.next.ServeHTTP(w, r.WithContext(ctx))
		return
	}

	cctx, capture := querycache.WithCapture(ctx)
	var mine *outcome // what this request's own handler run made, if it ran
	fill := func(fctx context.Context) ([]byte, error) {
		out := l.render(w, r, fctx, base, vary, known)
		mine = out
		switch {
		case out.sent:
			return nil, errSent
		case out.why != "":
			return nil, errNotStored
		}
		out.rec.stored = time.Now()
		return encodeRecord(out.rec), nil
	}
	var kvOpts []querycache.KVOption
	if l.cfg.ttl > 0 {
		kvOpts = append(kvOpts, querycache.WithTTL(l.cfg.ttl))
	}
	b, hit, err := l.pc.kv.GetOrSetCaptured(cctx, key, fill, kvOpts...)
	if err == nil && hit {
		if rec, derr := decodeRecord(b); derr != nil || rec.expired(time.Now()) {
			// Garbage in the store (or a foreign value under the key), or
			// a page past the lifetime its handler gave it: a miss, whose
			// render replaces it.
			_, _ = l.pc.kv.Delete(ctx, key)
			b, hit, err = l.pc.kv.GetOrSetCaptured(cctx, key, fill, kvOpts...)
		}
	}
	switch {
	case mine != nil && mine.sent:
		return // streamed, too large or hijacked: already with the client
	case mine != nil && err != nil:
		l.serveUnstored(w, r, mine)
		return
	case err != nil && ctx.Err() != nil:
		// The request's context ended while it waited for another
		// request's render of the page: its client left, or a timeout in
		// front of us passed. Running the handler now would run it with
		// a dead context; writing nothing would answer a client still
		// there 200 with an empty body. A client that left reads nothing.
		w.Header().Set(HeaderName, "bypass")
		w.Header().Set(ReasonHeader, "wait_ended")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "the page was not ready in time", http.StatusServiceUnavailable)
		return
	case err != nil:
		// The cache failed before running the handler: answer uncached.
		w.Header().Set(HeaderName, "bypass")
		w.Header().Set(ReasonHeader, "error")
		l.next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	rec, derr := decodeRecord(b)
	if derr != nil {
		// Garbage again (a store returning what it was not given).
		_, _ = l.pc.kv.Delete(ctx, key)
		if mine != nil {
			l.serveUnstored(w, r, mine)
			return
		}
		w.Header().Set(HeaderName, "miss")
		w.Header().Set(ReasonHeader, "garbage")
		l.next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	if hit {
		l.serve(w, r, rec, "hit", "")
		return
	}
	reason := ""
	if n, whys := capture.Untracked(); n > 0 {
		// GetOrSetCaptured did not store it: something was read without
		// the cache.
		reason = "untracked"
		if len(whys) > 0 {
			reason += " (" + strings.Join(whys, ",") + ")"
		}
		if l.cfg.cacheUntracked && l.storeUntracked(ctx, key, b, kvOpts) {
			reason = ""
		}
	}
	l.serve(w, r, rec, "miss", reason)
}

var (
	errSent      = errors.New("httpcache: the response went to the client as it was written")
	errNotStored = errors.New("httpcache: the response may not be stored")
)

// storeUntracked stores a page that read something without the cache,
// for its TTL only (CacheUntracked): no version stands for what its
// untracked reads showed, so it depends on nothing a write replaces
// (querycache refuses DependsOnCapture of such a capture).
func (l *layer) storeUntracked(ctx context.Context, key string, b []byte, kvOpts []querycache.KVOption) bool {
	return l.pc.kv.Set(ctx, key, b, kvOpts...) == nil
}

// eligible says whether r may be looked up: the user's id (PerUser), or
// why not.
func (l *layer) eligible(r *http.Request) (user, why string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", "method"
	}
	if r.Header.Get("Upgrade") != "" {
		return "", "upgrade"
	}
	// A body the handler may read (a search API taking its query in a
	// GET's JSON body) is not in the key: such a request is not looked up
	// (TestHostile49PagesGetBodyIgnored).
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return "", "body"
	}
	// A Range request goes to the handler as it came, with its If-Range:
	// a render keeps Range but not If-Range (a shared render must not see
	// validators), so a client resuming with the ETag of the body before a
	// write got 206 with the new body's bytes; the handler alone decides
	// what a range (and a stale If-Range) gets
	// (TestHostile49PagesIfRangeStrippedRangeKept).
	if len(r.Header.Values("Range")) > 0 {
		return "", "range"
	}
	if l.cfg.clientNoCache && clientNoCache(r.Header) {
		return "", "client_no_cache"
	}
	// Credentials: a header, or a client certificate (mutual TLS), which
	// names a user as surely as a cookie does
	// (TestHostile45MutualTLSUserPageShared).
	authed := r.Header.Get("Authorization") != "" || r.Header.Get("Proxy-Authorization") != "" ||
		len(r.Header.Values("Cookie")) > 0 || r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if l.cfg.perUser != nil {
		if id, ok := l.cfg.perUser(r); ok {
			return "u" + id, ""
		}
	}
	if authed {
		return "", "authenticated"
	}
	return "a", ""
}

func clientNoCache(h http.Header) bool {
	for _, d := range directives(h.Values("Cache-Control")) {
		if d.name == "no-cache" || d.name == "no-store" {
			return true
		}
	}
	for _, d := range directives(h.Values("Pragma")) {
		if d.name == "no-cache" {
			return true
		}
	}
	return false
}

// outcome is what one run of the handler made.
type outcome struct {
	rec      record
	sent     bool   // already with the client (pass-through)
	why      string // why it may not be stored; "" if it may
	eligible bool   // it passed the response rules (ETag and 304 apply)
}

// conditional are the request headers a shared render must not see: the
// page is made for every request with its key, and the middleware answers
// conditional requests itself.
var conditional = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// render runs the handler into a recorder, with fctx (which captures what
// it reads), and checks its response against the rules.
func (l *layer) render(w http.ResponseWriter, r *http.Request, fctx context.Context, base string, vary []string, known bool) *outcome {
	req := r.WithContext(fctx)
	req.Header = r.Header.Clone()
	for _, h := range conditional {
		req.Header.Del(h)
	}
	rec := newRecorder(w, l.cfg.maxBody, skipStored)
	// Once the response goes to the client as it is written, the
	// requests waiting for this render render their own at once
	// (TestHostile49StreamJoinersWaitForLeadersEnd).
	rec.onPass = func() { querycache.ReleaseWaiters(fctx) }
	l.next.ServeHTTP(rec, req)
	if rec.passed != "" {
		return &outcome{sent: true, why: rec.passed}
	}
	out := &outcome{rec: rec.result()}
	for k := range out.rec.header {
		if skipStored(k) {
			delete(out.rec.header, k)
		}
	}
	out.why = l.refuse(out.rec)
	if out.why == "" {
		got, ok := parseVary(out.rec.header.Values("Vary"))
		switch {
		case !ok:
			out.why = "vary"
		case !known || !slices.Equal(got, vary):
			// Remember what this URL varies on; the page was keyed by the
			// old list, so it is not stored this time.
			var opts []querycache.KVOption
			if l.cfg.ttl > 0 {
				opts = append(opts, querycache.WithTTL(l.cfg.ttl))
			}
			_ = l.pc.kv.Set(r.Context(), varyKey(base), []byte(strings.Join(got, "\n")), append(opts, querycache.Bookkeeping())...)
			if !slices.Equal(got, vary) {
				out.why = "vary_changed"
			}
		}
	}
	if out.why == "" || out.why == "vary_changed" {
		out.eligible = true
		if et := out.rec.header.Get("Etag"); et != "" && validETag(et) {
			out.rec.etag = et
		} else {
			sum := sha256.Sum256(out.rec.body)
			out.rec.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		}
		delete(out.rec.header, "Etag")
	}
	return out
}

// skipStored names the headers never stored: the cache's own, hop-by-hop
// ones, and Date (the server sets its own).
func skipStored(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case HeaderName, ReasonHeader, "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Date":
		return true
	}
	return false
}

// refuse says why a response may not be stored, or "".
func (l *layer) refuse(rec record) string {
	if !slices.Contains(l.cfg.statuses, rec.status) {
		return "status_" + strconv.Itoa(rec.status)
	}
	h := rec.header
	for k := range h {
		// A handler may write map keys of any case (h["set-cookie"]):
		// judged by their canonical names, never by the case written.
		if c := http.CanonicalHeaderKey(k); c != k && (c == "Set-Cookie" || c == "Cache-Control" || c == "Expires" || c == "Vary") {
			return "header"
		}
	}
	if len(h.Values("Set-Cookie")) > 0 {
		return "set_cookie"
	}
	maxAge := false
	for _, d := range directives(h.Values("Cache-Control")) {
		switch {
		case d.name == "private":
			return "private"
		case d.name == "no-store":
			return "no_store"
		case d.name == "no-cache":
			return "no_cache"
		case d.name == "max-age" || d.name == "s-maxage":
			// Any spelling of "no lifetime" (0, 00, -1, garbage) means
			// the response must not be reused.
			maxAge = true
			if n, err := strconv.ParseInt(strings.Trim(d.value, `"`), 10, 64); err != nil || n <= 0 {
				return "max_age_0"
			}
		}
	}
	if e := h.Get("Expires"); e != "" && !maxAge {
		// Without max-age, Expires says how long the response may be
		// reused: an invalid or past date means not at all (RFC 9111).
		if t, err := http.ParseTime(e); err != nil || !t.After(time.Now()) {
			return "expired"
		}
	}
	if len(h.Values("Trailer")) > 0 {
		return "trailers"
	}
	if len(h) > maxHeaderKeys {
		return "header"
	}
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return "trailers"
		}
		if !validFieldName(k) || len(vs) > maxValues {
			return "header"
		}
		for _, v := range vs {
			if !validFieldValue([]byte(v)) {
				return "header"
			}
		}
	}
	if cl := h.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(rec.body)) {
		return "content_length"
	}
	if len(rec.body) > l.cfg.maxBody {
		return "too_large"
	}
	if m := l.pc.qc.MaxEntryBytes(); m > 0 && len(rec.body) > m {
		// The cache's own bound, below MaxBodyBytes: the page would be
		// refused at its store, answered "miss" with no reason.
		return "too_large"
	}
	return ""
}

// serve answers r with a page that may be stored (hit, or a fresh render).
func (l *layer) serve(w http.ResponseWriter, r *http.Request, rec record, state, reason string) {
	h := w.Header()
	mergeHeader(h, rec.header)
	h.Set(HeaderName, state)
	if !rec.stored.IsZero() && state == "hit" {
		// How long ago it was rendered (RFC 9111, 5.1), so that a client
		// counts its max-age from the render, not from this response.
		h.Set("Age", strconv.FormatInt(int64(rec.age(time.Now())/time.Second), 10))
	}
	if reason != "" {
		h.Set(ReasonHeader, reason)
	} else {
		h.Del(ReasonHeader)
	}
	if rec.etag != "" {
		h.Set("Etag", rec.etag)
		if rec.status == http.StatusOK && noneMatch(r.Header.Values("If-None-Match"), rec.etag) {
			for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding"} {
				h.Del(k)
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if rec.status != http.StatusNoContent && rec.status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(rec.body)))
		sniffContentType(h, rec.body)
	}
	w.WriteHeader(rec.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(rec.body)
	}
}

// addedHeaders are the list-valued response headers a handler adds to
// (Header().Add, http.SetCookie) rather than sets: a middleware in front
// of the cache may have put values of its own in them (CORS's "Vary:
// Origin", a CSRF cookie).
var addedHeaders = map[string]bool{"Vary": true, "Set-Cookie": true, "Link": true, "Server-Timing": true}

// mergeHeader copies the page's headers src into the client's dst. The
// handler renders into a header map of its own, not the client's one, to
// which it would have added: the values of addedHeaders are appended to
// what dst has, as without the cache; assigned, they replaced what a
// middleware in front had set (TestHostile49OuterHeadersReplacedByPage).
// Any other header of the page replaces dst's, as a handler's Set does.
func mergeHeader(dst, src http.Header) {
	for k, vs := range src {
		if old := dst[k]; len(old) > 0 && addedHeaders[k] {
			dst[k] = slices.Concat(old, vs)
			continue
		}
		dst[k] = slices.Clone(vs)
	}
}

// sniffContentType sets the Content-Type net/http would sniff from body
// when the header has none (nor a Content-Encoding or Transfer-Encoding).
// net/http sniffs only what is written: a HEAD answered from a stored
// page writes no body, and went out without the Content-Type its GET and
// an uncached HEAD have (TestHostile49PagesHeadHitLacksContentType).
func sniffContentType(h http.Header, body []byte) {
	if _, ok := h["Content-Type"]; ok || len(body) == 0 || h.Get("Content-Encoding") != "" || h.Get("Transfer-Encoding") != "" {
		return
	}
	h.Set("Content-Type", http.DetectContentType(body))
}

// serveUnstored answers r with what its own handler run made, which was
// not stored.
func (l *layer) serveUnstored(w http.ResponseWriter, r *http.Request, out *outcome) {
	if out.eligible {
		l.serve(w, r, out.rec, "miss", out.why)
		return
	}
	h := w.Header()
	mergeHeader(h, out.rec.header)
	h.Set(HeaderName, "miss")
	h.Set(ReasonHeader, out.why)
	w.WriteHeader(out.rec.status)
	_, _ = w.Write(out.rec.body)
}

// canonicalQuery sorts the query's parameters by name, keeping the order
// of one name's values; a query that does not parse is not cached.
func canonicalQuery(raw string) (string, bool) {
	if raw == "" {
		return "", true
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return "", false
	}
	return v.Encode(), true
}

// field appends s to b with its length first, so no two lists of fields
// make the same key.
func field(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// baseKey is a page's key without its Vary part. HEAD uses GET's.
func baseKey(r *http.Request, query, user string, depth int) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	b := make([]byte, 0, 64+len(r.Host)+len(r.URL.Path)+len(r.RequestURI)+len(query)+len(user))
	b = field(b, "GET")
	b = field(b, scheme)
	b = field(b, strings.ToLower(r.Host))
	b = field(b, r.URL.EscapedPath())
	// The path the client asked for too: a middleware in front (such as
	// http.StripPrefix) may rewrite r.URL, and two routes mounted under
	// different prefixes then see the same path; keyed by that alone, one
	// route was served the other's page
	// (TestHostile49PagesStripPrefixRoutesShareKey).
	b = field(b, requestPath(r))
	b = field(b, query)
	b = field(b, user)
	b = field(b, strconv.Itoa(depth))
	return string(b)
}

// requestPath is the path of the request-target as the client sent it
// (r.RequestURI without its query), "" when r did not come from a server.
func requestPath(r *http.Request) string {
	p, _, _ := strings.Cut(r.RequestURI, "?")
	return p
}

func varyKey(base string) string { return opaqueKey("vary|", base) }

// opaqueKey is kind followed by a hash of what a key is made of: the
// query string, the cookie or the header values a page varies on, the
// user's identity are values, and written out in the store's key names
// they showed in SCAN, MONITOR and the slow log (a session cookie among
// them: TestPageKeysHideValues). As Django hashes the URL and the headers.
func opaqueKey(kind, parts string) string {
	sum := sha256.Sum256([]byte(parts))
	return kind + base64.RawURLEncoding.EncodeToString(sum[:])
}

// pageKey adds the values of the request headers the URL varies on.
func pageKey(base string, vary []string, r *http.Request) string {
	b := []byte(base)
	for _, name := range vary {
		b = field(b, name)
		vs := r.Header.Values(name)
		b = strconv.AppendInt(b, int64(len(vs)), 10)
		for _, v := range vs {
			b = field(b, v)
		}
	}
	return opaqueKey("page|", string(b))
}

// varyList returns the headers the URL's pages vary on, as remembered,
// and whether it is known.
func (l *layer) varyList(ctx context.Context, base string) ([]string, bool) {
	b, ok, err := l.pc.kv.Get(ctx, varyKey(base), querycache.Bookkeeping()) // the page's lookup is the one counted
	if err != nil || !ok {
		return nil, false
	}
	if len(b) == 0 {
		return nil, true
	}
	list := strings.Split(string(b), "\n")
	if len(list) > maxVary {
		return nil, false
	}
	for i, n := range list {
		if !validFieldName(n) || http.CanonicalHeaderKey(n) != n || (i > 0 && n <= list[i-1]) {
			return nil, false
		}
	}
	return list, true
}

// parseVary returns the header names of a response's Vary, canonical,
// sorted and unique; ok is false for "*", an invalid name or too many.
func parseVary(values []string) ([]string, bool) {
	var names []string
	for _, v := range values {
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if n == "*" || !validFieldName(n) {
				return nil, false
			}
			names = append(names, http.CanonicalHeaderKey(n))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > maxVary {
		return nil, false
	}
	return names, true
}

type directive struct{ name, value string }

// directives splits Cache-Control (or Pragma) values into lower-case
// directive names and their values.
func directives(values []string) []directive {
	var out []directive
	for _, v := range values {
		for _, part := range splitOutsideQuotes(v) {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, value, _ := strings.Cut(part, "=")
			out = append(out, directive{strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
		}
	}
	return out
}

func splitOutsideQuotes(s string) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// noneMatch reports whether an If-None-Match header matches etag, by the
// weak comparison RFC 9110 (13.1.2) prescribes for it.
func noneMatch(values []string, etag string) bool {
	opaque := strings.TrimPrefix(etag, "W/")
	for _, v := range values {
		s := strings.TrimSpace(v)
		for s != "" {
			if s[0] == '*' {
				return true
			}
			weak := strings.HasPrefix(s, "W/")
			if weak {
				s = s[2:]
			}
			if s == "" || s[0] != '"' {
				break // malformed: ignore the rest
			}
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				break
			}
			if s[:end+2] == opaque {
				return true
			}
			s = strings.TrimLeft(s[end+2:], " \t,")
		}
	}
	return false
}
