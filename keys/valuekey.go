package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// maxRawValueKey is the longest key Value keeps as written; a longer one is
// hashed, so that every store key stays short (Memcached's limit is 250
// bytes, prefix included).
const maxRawValueKey = 128

// ValuePrefixOK reports whether p may prefix the keys of the low-level API
// (querycache.KVOptions.Prefix): up to 64 letters, digits, '_', '.' or '-'.
// Nothing else, so that the prefix, the version and the key of a name can
// never be confused with one another.
func ValuePrefixOK(p string) bool {
	if len(p) > MaxPrefixLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Value is the store key of a value the application names itself (the
// low-level API, Django's cache.set(key, value, version=...)): prefix (as
// checked by ValuePrefixOK), version and key. Any string is a safe key: a
// key of printable ASCII without spaces, '#', '{' or '}', up to 128 bytes, is kept
// as written, for people reading the store; any other (spaces, control
// characters, invalid UTF-8, 10 kB) is replaced by '#' and the base64 of
// its SHA-256, a form no kept key can take. Distinct (prefix, version,
// key) triples give distinct names.
func (n Namespace) Value(prefix string, version int, key string) string {
	b := make([]byte, 0, len(n.prefix)+3+len(prefix)+1+20+1+min(len(key), 44))
	b = append(b, n.prefix...)
	b = append(b, "kv:"...)
	b = append(b, prefix...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, ':')
	if rawValueKey(key) {
		b = append(b, key...)
	} else {
		sum := sha256.Sum256([]byte(key))
		b = append(b, '#')
		b = base64.RawURLEncoding.AppendEncode(b, sum[:])
	}
	return string(b)
}

func rawValueKey(key string) bool {
	if len(key) > maxRawValueKey {
		return false
	}
	for i := 0; i < len(key); i++ {
		// '{' and '}' could spell a store's own key (RedisStore's lease
		// of another entry is name + ":lease{" + name + "}").
		if c := key[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// ValueVersion names the version of one low-level value, given its name
// (Value's result): the low-level API replaces it after every change of
// the value (Set, Add, Incr, Delete), so that whatever showed the value
// (a page that captured it) is invalidated. The value itself does not
// depend on it. It is Value's name with "v:" after the prefix, so it
// lives among the versions and never meets an entry key.
func (n Namespace) ValueVersion(valueName string) string {
	return n.prefix + "v:" + valueName[len(n.prefix):]
}

// IsValueVersion reports whether name is a ValueVersion of n: "v:" and
// then a Value name ("kv:...") after the prefix, which no version of a
// table, an object or the epoch begins with.
func (n Namespace) IsValueVersion(name string) bool {
	p := len(n.prefix)
	return len(name) > p+5 && name[:p] == n.prefix && name[p:p+5] == "v:kv:"
}
