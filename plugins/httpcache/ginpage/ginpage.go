// Package ginpage puts the page cache of querycache.dev/plugins/httpcache
// in front of gin handlers: a gin.HandlerFunc for a route, a group or the
// whole engine.
//
//	pages, _ := httpcache.New(cache, httpcache.TTL(10*time.Minute))
//	r := gin.New()
//	r.Use(ginpage.Middleware(pages.Middleware()))              // site-wide
//	r.GET("/", ginpage.Middleware(pages.Middleware()), home)   // or per route
//
// Handlers query with the request's context, as httpcache requires:
// db.WithContext(c.Request.Context()) (gin.Context's own Done/Value do not
// carry the page cache's capture unless the engine's ContextWithFallback
// is set; c.Request.Context() always does).
//
// It is a module of its own so that the library does not depend on gin,
// and it is not in the repository's go.work: gin's dependencies would
// raise golang.org/x/text, x/net and protobuf for every module of the
// workspace, so the library's tests would no longer build with the
// versions its users get. Test it on its own:
//
//	cd plugins/httpcache/ginpage && GOWORK=off go test -race ./...
package ginpage

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Middleware adapts a net/http middleware (httpcache.Cache.Middleware, or
// any func(http.Handler) http.Handler that may answer without calling its
// handler) to gin: the rest of the gin chain runs as its handler, writing
// to the ResponseWriter and with the request the middleware gives it; when
// the middleware answers alone (a cache hit), the rest of the chain does
// not run.
func Middleware(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		orig, origReq := c.Writer, c.Request
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gw := &writer{ResponseWriter: w, status: http.StatusOK, size: -1, done: r.Context().Done()}
			c.Writer, c.Request = gw, r
			c.Next()
			gw.WriteHeaderNow() // gin does this after its handlers too
			c.Writer, c.Request = orig, origReq
		}))
		h.ServeHTTP(orig, origReq)
		c.Abort() // the chain ran inside the middleware, or must not run
	}
}

// writer is a gin.ResponseWriter over the page cache's ResponseWriter,
// with gin's semantics: WriteHeader records the status, which is sent with
// the first Write (or WriteHeaderNow).
type writer struct {
	http.ResponseWriter
	status int
	size   int // -1 until the header is sent
	done   <-chan struct{}
}

var _ gin.ResponseWriter = (*writer)(nil)

func (w *writer) WriteHeader(code int) {
	if code > 0 && w.size == -1 {
		w.status = code
	}
}

func (w *writer) WriteHeaderNow() {
	if w.size == -1 {
		w.size = 0
		w.ResponseWriter.WriteHeader(w.status)
	}
}

func (w *writer) Write(b []byte) (int, error) {
	w.WriteHeaderNow()
	n, err := w.ResponseWriter.Write(b)
	w.size += n
	return n, err
}

func (w *writer) WriteString(s string) (int, error) {
	w.WriteHeaderNow()
	n, err := io.WriteString(w.ResponseWriter, s)
	w.size += n
	return n, err
}

func (w *writer) Status() int   { return w.status }
func (w *writer) Size() int     { return w.size }
func (w *writer) Written() bool { return w.size != -1 }

// Flush streams the response: the page cache then does not store it.
func (w *writer) Flush() {
	w.WriteHeaderNow()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands over the connection: the page cache then does not store
// the response.
func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.size == -1 {
		w.size = 0
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// CloseNotify is gin's (deprecated) signal that the client went away.
func (w *writer) CloseNotify() <-chan bool {
	ch := make(chan bool, 1)
	go func() {
		<-w.done
		ch <- true
	}()
	return ch
}

// Pusher returns nil: HTTP/2 push is not passed through the page cache.
func (w *writer) Pusher() http.Pusher { return nil }

// Unwrap lets http.ResponseController reach the page cache's writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
