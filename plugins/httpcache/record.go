package httpcache

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A page as stored: the status, the ETag, the response headers and the
// body, in this layout (all lengths uvarint):
//
//	magic  "QCP" and format byte 1 or 2
//	stored format 2 only: uvarint, unix nanoseconds (> 0) when the page
//	       was rendered, for its own lifetime (lifetime) and Age
//	status uvarint, 100..999
//	etag   length, bytes (a quoted entity tag, possibly W/)
//	n      number of header names, then per name, sorted and unique,
//	       each in canonical form (textproto.CanonicalMIMEHeaderKey):
//	       length, name, count of values (>= 1), each value length, bytes
//	body   length, bytes
//	crc    4 bytes, CRC-32 (IEEE) of everything before, big-endian
//
// The decoder is strict: anything else (a wrong magic, an out-of-range
// status, a header that is not a valid field name or value, names out of
// order, trailing bytes, a wrong checksum) is an error, which the
// middleware treats as a miss. What decodes re-encodes to the same bytes.

const (
	recordMagic   = "QCP\x01"
	recordMagic2  = "QCP\x02"
	maxHeaderKeys = 256
	maxValues     = 64
)

var errRecord = errors.New("httpcache: not a stored page")

type record struct {
	stored time.Time // when it was rendered; zero in format 1
	status int
	etag   string
	header http.Header
	body   []byte
}

func encodeRecord(r record) []byte {
	names := make([]string, 0, len(r.header))
	for k, vs := range r.header {
		if len(vs) > 0 {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	n := len(recordMagic) + 16 + len(r.etag) + len(r.body) + 8
	for _, k := range names {
		n += len(k) + 8
		for _, v := range r.header[k] {
			n += len(v) + 4
		}
	}
	b := make([]byte, 0, n)
	if r.stored.IsZero() {
		b = append(b, recordMagic...)
	} else {
		b = append(b, recordMagic2...)
		b = binary.AppendUvarint(b, uint64(r.stored.UnixNano()))
	}
	b = binary.AppendUvarint(b, uint64(r.status))
	b = appendString(b, r.etag)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = appendString(b, k)
		vs := r.header[k]
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = appendString(b, string(r.body))
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the layout above, failing on anything out of shape.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	// Only the shortest encoding: what decodes must re-encode the same.
	if n != len(binary.AppendUvarint(nil, v)) {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func decodeRecord(b []byte) (record, error) {
	if len(b) < len(recordMagic)+4 || (string(b[:len(recordMagic)]) != recordMagic && string(b[:len(recordMagic2)]) != recordMagic2) {
		return record{}, errRecord
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return record{}, errRecord
	}
	d := &decoder{b: body[len(recordMagic):]}
	var r record
	if string(b[:len(recordMagic2)]) == recordMagic2 {
		ns := d.uvarint()
		if d.err || ns == 0 || ns > math.MaxInt64 {
			return record{}, errRecord
		}
		r.stored = time.Unix(0, int64(ns))
	}
	status := d.uvarint()
	if status < 100 || status > 999 {
		return record{}, errRecord
	}
	r.status = int(status)
	r.etag = string(d.bytes())
	if r.etag != "" && !validETag(r.etag) {
		return record{}, errRecord
	}
	n := d.uvarint()
	if d.err || n > maxHeaderKeys {
		return record{}, errRecord
	}
	r.header = make(http.Header, n)
	prev := ""
	for i := uint64(0); i < n; i++ {
		k := string(d.bytes())
		if d.err || !validFieldName(k) || textproto.CanonicalMIMEHeaderKey(k) != k || (i > 0 && k <= prev) {
			return record{}, errRecord
		}
		prev = k
		nv := d.uvarint()
		if d.err || nv == 0 || nv > maxValues {
			return record{}, errRecord
		}
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv; j++ {
			v := d.bytes()
			if d.err || !validFieldValue(v) {
				return record{}, errRecord
			}
			vs = append(vs, string(v))
		}
		r.header[k] = vs
	}
	r.body = d.bytes()
	if d.err || len(d.b) != 0 {
		return record{}, errRecord
	}
	r.body = slices.Clone(r.body)
	return r, nil
}

// validFieldName reports whether s is an HTTP token (RFC 9110, 5.6.2).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validFieldValue reports whether v may be sent as a header value: no
// control characters but tab, no NUL, CR or LF.
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validETag reports whether s is an entity tag: optionally W/, then a
// quoted string of etagc characters.
func validETag(s string) bool {
	if len(s) >= 2 && s[:2] == "W/" {
		s = s[2:]
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if c == '"' || c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// expired reports whether the page is past the lifetime its handler gave
// it at now: s-maxage (this is a shared cache), else max-age, else
// Expires, counted from when it was rendered. A page the handler gave no
// lifetime lives as long as the cache's own TTL. Django's cache
// middleware likewise stores a response for its max-age; before this, a
// page rendered with max-age=1 was served for the whole TTL, and repeated
// its max-age=1 to clients as if fresh (TestHostile45ResponseMaxAgeIgnored,
// TestHostile45ResponseExpiresIgnored). Format 1 pages have no render
// time and are not judged.
func (r record) expired(now time.Time) bool {
	if r.stored.IsZero() {
		return false
	}
	age := r.age(now)
	var maxAge, sMaxAge int64 = -1, -1
	for _, d := range directives(r.header.Values("Cache-Control")) {
		n, err := strconv.ParseInt(strings.Trim(d.value, `"`), 10, 64)
		if err != nil {
			continue // refuse did not store one it could not read
		}
		switch d.name {
		case "max-age":
			maxAge = n
		case "s-maxage":
			sMaxAge = n
		}
	}
	switch {
	case sMaxAge >= 0:
		return age >= time.Duration(min(sMaxAge, math.MaxInt64/int64(time.Second)))*time.Second
	case maxAge >= 0:
		return age >= time.Duration(min(maxAge, math.MaxInt64/int64(time.Second)))*time.Second
	}
	if e := r.header.Get("Expires"); e != "" {
		t, err := http.ParseTime(e)
		return err != nil || !now.Before(t)
	}
	return false
}

// age is how old the page is at now (RFC 9111, 4.2.3): the time since it
// was rendered here plus the Age its handler sent, which an upstream cache
// the handler relays (or an inner Page layer's hit) counted before: a page
// that arrived 1 s old with max-age=2 has 1 s left, not 2
// (TestHostile46UpstreamAgeIgnored, TestHostile46NestedPageOuterOutlivesMaxAge).
func (r record) age(now time.Time) time.Duration {
	d := max(now.Sub(r.stored), 0)
	if v := r.header.Get("Age"); v != "" {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			d += time.Duration(min(n, math.MaxInt64/int64(time.Second)/2)) * time.Second
		}
	}
	return d
}
