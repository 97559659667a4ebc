package querycache

import (
	"encoding/binary"
	"errors"
)

// An invalidation broadcast, as published on a TieredStore's channel
// after the versions it names were replaced in the second level (on a
// Redis channel as is; through pg_notify in base64, split into messages
// that fit PostgreSQL's payload limit, see notifyPayloads):
//
//	magic "qi", format 1
//	kind  'n': names follow; 'a': every version (drop all of L1)
//	names (kind 'n' only):
//	      count uvarint, 1 to maxBroadcastNames
//	      count times: len uvarint (at least 1), then len bytes of name
//
// Nothing may follow the last name. Anyone who can PUBLISH on the
// channel can send anything, so decodeBroadcast checks every length, never
// allocates more than the message bounds (the names alias the message;
// the slice holding them has at most maxBroadcastNames elements), and
// reports errBadBroadcast for anything it does not understand. The
// receiver treats that as "every version": over-invalidating is safe,
// ignoring a message that was meant to invalidate is not.
const (
	broadcastMagic0  = 'q'
	broadcastMagic1  = 'i'
	broadcastFormat  = 1
	broadcastNames   = 'n'
	broadcastAll     = 'a'
	broadcastHeader  = 4
	maxBroadcastSize = 64 << 10
	// maxBroadcastNames bounds the names of one message; a Bump of more
	// (or whose names take more than maxBroadcastSize) publishes "all".
	maxBroadcastNames = 1000
)

var errBadBroadcast = errors.New("querycache: undecodable invalidation broadcast")

// broadcast is a decoded message: all, or the version names it replaced.
type broadcast struct {
	all   bool
	names []string
}

// encodeBroadcast returns the message announcing that names were
// replaced: the "all" form when there are too many of them, or they are
// too long, for one message.
func encodeBroadcast(names []string) []byte {
	if len(names) == 0 || len(names) > maxBroadcastNames {
		return encodeBroadcastAll()
	}
	size := broadcastHeader + uvarintLen(uint64(len(names)))
	for _, n := range names {
		if n == "" {
			// Not a name any store holds; say "all" rather than send a
			// message the receivers reject.
			return encodeBroadcastAll()
		}
		size += uvarintLen(uint64(len(n))) + len(n)
	}
	if size > maxBroadcastSize {
		return encodeBroadcastAll()
	}
	b := make([]byte, 0, size)
	b = append(b, broadcastMagic0, broadcastMagic1, broadcastFormat, broadcastNames)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	return b
}

// encodeBroadcastAll returns the message that drops every version.
func encodeBroadcastAll() []byte {
	return []byte{broadcastMagic0, broadcastMagic1, broadcastFormat, broadcastAll}
}

// decodeBroadcast parses a message received on the channel. The names
// alias msg (a string: go-redis hands the payload over as one).
func decodeBroadcast(msg string) (broadcast, error) {
	if len(msg) < broadcastHeader || len(msg) > maxBroadcastSize ||
		msg[0] != broadcastMagic0 || msg[1] != broadcastMagic1 || msg[2] != broadcastFormat {
		return broadcast{}, errBadBroadcast
	}
	switch msg[3] {
	case broadcastAll:
		if len(msg) != broadcastHeader {
			return broadcast{}, errBadBroadcast
		}
		return broadcast{all: true}, nil
	case broadcastNames:
	default:
		return broadcast{}, errBadBroadcast
	}
	rest := msg[broadcastHeader:]
	count, ok := uvarint(&rest)
	// Each name takes at least two bytes (its length and one byte), so a
	// count the rest cannot hold is rejected before anything is allocated.
	if !ok || count == 0 || count > maxBroadcastNames || count > uint64(len(rest)/2) {
		return broadcast{}, errBadBroadcast
	}
	names := make([]string, 0, count)
	for range count {
		n, ok := uvarint(&rest)
		if !ok || n == 0 || n > uint64(len(rest)) {
			return broadcast{}, errBadBroadcast
		}
		names = append(names, rest[:n])
		rest = rest[n:]
	}
	if rest != "" {
		return broadcast{}, errBadBroadcast
	}
	return broadcast{names: names}, nil
}

// uvarintLen is the length of x's uvarint encoding.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// uvarint reads a minimally encoded uvarint from the front of *s and
// advances it. A non-minimal encoding (which encodeBroadcast never writes)
// is rejected, so every accepted message has exactly one spelling.
func uvarint(s *string) (uint64, bool) {
	var x uint64
	var shift uint
	for i := 0; i < len(*s) && i < binary.MaxVarintLen64; i++ {
		c := (*s)[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, false // overflows 64 bits
			}
			if i > 0 && c == 0 {
				return 0, false // non-minimal
			}
			*s = (*s)[i+1:]
			return x | uint64(c)<<shift, true
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, false
}
