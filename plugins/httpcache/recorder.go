package httpcache

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// recorder is the ResponseWriter a handler writes to while its page is
// being filled: it keeps the status, the headers and the body in memory.
//
// It gives up recording, and turns into a pass-through to the client's
// ResponseWriter, when the handler streams (Flush), when the body grows
// past the size limit, or when the handler hijacks the connection: such a
// response is sent as the handler makes it and never stored.
type recorder struct {
	w      http.ResponseWriter // the client's
	header http.Header         // what the handler changes
	sent   http.Header         // the headers as they were at WriteHeader
	status int
	body   bytes.Buffer
	max    int

	wroteHeader bool
	passed      string // why the response went through ("stream", "too_large", "hijacked"); "" while recording
	skip        func(name string) bool
	// onPass is called once when the recorder stops recording: the
	// render will not be stored, and the requests that joined its fill
	// must not wait for its end (a live stream's is when its client
	// leaves): TestHostile49StreamJoinersWaitForLeadersEnd.
	onPass func()
}

func newRecorder(w http.ResponseWriter, max int, skip func(string) bool) *recorder {
	return &recorder{w: w, header: make(http.Header), max: max, skip: skip}
}

func (r *recorder) Header() http.Header {
	if r.passed != "" {
		return r.w.Header()
	}
	return r.header
}

func (r *recorder) WriteHeader(code int) {
	if r.passed != "" {
		r.w.WriteHeader(code)
		return
	}
	if r.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		return // informational: not part of the stored response
	}
	if code < 100 || code > 999 {
		panic("httpcache: invalid WriteHeader code " + strconv.Itoa(code))
	}
	r.wroteHeader = true
	r.status = code
	r.sent = r.header.Clone() // later changes to the map do not count, as with net/http
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.passed != "" {
		return r.w.Write(p)
	}
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if r.body.Len()+len(p) > r.max {
		r.passThrough("too_large")
		return r.w.Write(p)
	}
	return r.body.Write(p)
}

// passThrough sends what was recorded to the client and makes every later
// call go straight to it.
func (r *recorder) passThrough(why string) {
	if r.passed != "" {
		return
	}
	r.passed = why
	r.released()
	dst := r.w.Header()
	src := r.header
	if r.wroteHeader {
		src = r.sent
	}
	kept := make(http.Header, len(src))
	for k, vs := range src {
		if !r.skip(k) {
			kept[k] = vs
		}
	}
	mergeHeader(dst, kept) // what a middleware in front set stays (TestHostile49OuterHeadersReplacedByPage)
	dst.Set(HeaderName, "miss")
	dst.Set(ReasonHeader, why)
	if r.wroteHeader {
		r.w.WriteHeader(r.status)
	}
	if r.body.Len() > 0 {
		_, _ = r.w.Write(r.body.Bytes())
		r.body.Reset()
	}
}

// released runs onPass, once recording has stopped.
func (r *recorder) released() {
	if f := r.onPass; f != nil {
		r.onPass = nil
		f()
	}
}

// Flush streams: the response is not stored.
func (r *recorder) Flush() {
	_ = r.FlushError()
}

// FlushError is what http.ResponseController calls.
func (r *recorder) FlushError() error {
	if !r.wroteHeader && r.passed == "" {
		r.WriteHeader(http.StatusOK)
	}
	r.passThrough("stream")
	return http.NewResponseController(r.w).Flush()
}

// Hijack hands the connection to the handler: the response is not stored.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("httpcache: the underlying ResponseWriter cannot hijack")
	}
	if r.passed == "" {
		r.passed = "hijacked"
		r.released()
	}
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the client's writer for what
// the recorder does not handle itself (deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.w }

func (r *recorder) result() record {
	if !r.wroteHeader {
		return record{status: http.StatusOK, header: r.header.Clone(), body: r.body.Bytes()}
	}
	h := r.sent
	if late := r.lateTrailers(); len(late) > 0 {
		// Kept under http.TrailerPrefix: the response is then not stored
		// (it has trailers), and sent as the handler made it, trailers
		// included. Before, values set after the body were dropped with
		// the map they were set in (TestHostile27UndeclaredTrailerStored,
		// TestHostile27DeclaredTrailerDropped).
		h = h.Clone()
		for k, vs := range late {
			h[http.TrailerPrefix+k] = vs
		}
	}
	return record{status: r.status, header: h, body: r.body.Bytes()}
}

// lateTrailers returns the trailers the handler set after WriteHeader: the
// keys with http.TrailerPrefix, and the values of the names its Trailer
// header declared.
func (r *recorder) lateTrailers() http.Header {
	var t http.Header
	add := func(k string, vs []string) {
		if t == nil {
			t = make(http.Header)
		}
		t[k] = vs
	}
	for k, vs := range r.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(name, vs)
		}
	}
	for _, decl := range r.sent.Values("Trailer") {
		for name := range strings.SplitSeq(decl, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if vs := r.header[name]; name != "" && len(vs) > 0 {
				add(name, vs)
			}
		}
	}
	return t
}
