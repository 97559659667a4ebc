package httpcache

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"querycache.dev/querycache"
)

func sampleRecord() record {
	return record{
		status: 200,
		etag:   `"abc"`,
		header: http.Header{"Content-Type": {"text/html; charset=utf-8"}, "Vary": {"Accept-Language", "Accept-Encoding"}, "X-Empty": {""}},
		body:   []byte("<p>hello</p>"),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []record{
		sampleRecord(),
		{status: 404, header: http.Header{}, body: nil},
		{status: 301, etag: `W/"x"`, header: http.Header{"Location": {"/there"}}, body: []byte{0, 1, 2, 255}},
	} {
		b := encodeRecord(r)
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatalf("decode(encode(%v)): %v", r, err)
		}
		if got.status != r.status || got.etag != r.etag || !bytes.Equal(got.body, r.body) || len(got.header) != len(r.header) {
			t.Fatalf("round trip: %+v, want %+v", got, r)
		}
		for k, vs := range r.header {
			if !reflect.DeepEqual(got.header[k], vs) {
				t.Fatalf("header %s: %q, want %q", k, got.header[k], vs)
			}
		}
		if !bytes.Equal(encodeRecord(got), b) {
			t.Fatal("re-encoding differs")
		}
	}
}

// TestRecordDamage: every truncation and every single-bit flip of a
// stored page is refused.
func TestRecordDamage(t *testing.T) {
	b := encodeRecord(sampleRecord())
	for n := 0; n < len(b); n++ {
		if _, err := decodeRecord(b[:n]); err == nil {
			t.Fatalf("a truncation to %d bytes decoded", n)
		}
	}
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, err := decodeRecord(c); err == nil {
				t.Fatalf("a flip of bit %d of byte %d decoded", bit, i)
			}
		}
	}
	if _, err := decodeRecord(append(bytes.Clone(b), 0)); err == nil {
		t.Fatal("a trailing byte decoded")
	}
}

// FuzzDecodeRecord: the decoder never panics, and whatever it accepts
// re-encodes to exactly the bytes it was given (it accepts only what
// encodeRecord writes).
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(sampleRecord()))
	f.Add(encodeRecord(record{status: 204, header: http.Header{}}))
	f.Add([]byte("QCP\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// As given, and with a valid checksum appended, so the fuzzer
		// reaches the parser behind the checksum too.
		sealed := binary.BigEndian.AppendUint32(bytes.Clone(b), crc32.ChecksumIEEE(b))
		for _, in := range [][]byte{b, sealed} {
			r, err := decodeRecord(in)
			if err != nil {
				continue
			}
			if !bytes.Equal(encodeRecord(r), in) {
				t.Fatalf("accepted %q, which re-encodes differently", in)
			}
			if r.status < 100 || r.status > 999 {
				t.Fatalf("accepted status %d", r.status)
			}
		}
	})
}

// TestGarbageIsAMiss: bytes under a page's key that are not a page are a
// miss (the handler renders, the garbage is replaced), never a panic or a
// served body.
func TestGarbageIsAMiss(t *testing.T) {
	qc, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.Close()
	pc, err := New(qc)
	if err != nil {
		t.Fatal(err)
	}
	renders := 0
	h := pc.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		renders++
		io.WriteString(w, "the page")
	}))
	req := httptest.NewRequest("GET", "http://example.com/p?x=1", nil)
	base := baseKey(req, "x=1", "a", 0)
	ctx := context.Background()
	if err := pc.kv.Set(ctx, varyKey(base), nil); err != nil {
		t.Fatal(err)
	}
	good := encodeRecord(record{status: 200, etag: `"e"`, header: http.Header{}, body: []byte("the page")})
	for _, garbage := range [][]byte{[]byte("garbage"), good[:len(good)-1], append(bytes.Clone(good), 'x'), {}} {
		if err := pc.kv.Set(ctx, pageKey(base, nil, req), garbage); err != nil {
			t.Fatal(err)
		}
		for _, method := range []string{"GET", "HEAD"} {
			before := renders
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(method, "http://example.com/p?x=1", nil))
			if w.Code != 200 || w.Header().Get(HeaderName) != "miss" || renders != before+1 {
				t.Fatalf("%s over garbage %q: %d %q, %d renders", method, garbage, w.Code, w.Header().Get(HeaderName), renders-before)
			}
			if method == "GET" && w.Body.String() != "the page" {
				t.Fatalf("GET over garbage %q: body %q", garbage, w.Body.String())
			}
			// A GET render replaced the garbage.
			if method == "HEAD" {
				w = httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/p?x=1", nil))
			}
			w = httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/p?x=1", nil))
			if w.Header().Get(HeaderName) != "hit" || w.Body.String() != "the page" {
				t.Fatalf("after the render: %q %q", w.Header().Get(HeaderName), w.Body.String())
			}
			if err := pc.kv.Set(ctx, pageKey(base, nil, req), garbage); err != nil {
				t.Fatal(err)
			}
		}
	}
}
