package querycache

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseKey names the fill lease of the entry key: key + ":lease{" + key + "}".
//
// Slot: PutLeased reads the lease and writes the entry in one script, and
// in Redis Cluster a script may only touch keys of one slot. The slot of a
// key that holds a hash tag (the bytes between its first '{' and the first
// '}' after it, when there are some) is the slot of the tag alone. Entry
// names hold no braces (keys.CheckPrefix refuses them in the prefix, and
// the keys package escapes them in every part), so the first '{' of the
// lease key is the one added here, the first '}' after it is the last
// byte, the tag is exactly key, and the lease lives in key's own slot.
// Lease refuses a key with a brace in Cluster mode (a caller-chosen
// GetOrSet name): its slot would not follow.
//
// Name: the lease key starts with the entry key, hence with the cache's
// prefix, so an ACL that limits the application to its prefix (~myapp:*)
// allows it and a cleanup by prefix removes it. ("{" + key + "}:lease"
// would hash the same but escape both.) It never equals an entry or
// version name (those hold no braces), and two keys never share a lease
// (the key is read back from the lease key's second half).
func leaseKey(key string) string { return key + ":lease{" + key + "}" }

// putLeasedScript stores an entry unless a newer fill superseded ours,
// and releases our lease, atomically.
//
//	KEYS[1] the entry, KEYS[2] its lease
//	ARGV[1] our lease token, ARGV[2] the entry, ARGV[3] its TTL in ms
//
// Not stored (returns 0) when:
//   - the lease is held by another token: ours expired while we stalled
//     and another filler took over; its value, read after ours, wins;
//   - the stored entry was created after ours (bytes 12 to 19, the
//     big-endian created time of formats 2 and 3): a filler that started
//     later already stored, then released its lease, before we woke up.
//
// A key of another type under the entry's name (another program's list)
// is garbage: pcall reads it as no entry, and SET replaces it.
//
// Both only avoid overwriting a newer result with an older one (a wasted
// miss); neither is needed for consistency, which the versions recorded in
// the entry give. Clocks of different hosts may disagree a little: a wrong
// comparison only keeps one of two valid entries instead of the other.
// The bytes are compared one by one, not as Lua strings: Redis compares
// strings with strcoll in its locale.
var putLeasedScript = `
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
local function cmp(a, ai, b, bi)
  for i = 0, 7 do
    local x, y = string.byte(a, ai + i), string.byte(b, bi + i)
    if x ~= y then
      if x > y then return 1 end
      return -1
    end
  end
  return 0
end
local stored = 1
local old = redis.pcall('GETRANGE', KEYS[1], 0, 18)
if type(old) == 'string' and string.len(old) == 19 and string.sub(old, 1, 2) == 'qc' and string.len(ARGV[2]) >= 19 and string.len(ARGV[4]) == 8 then
  if cmp(old, 12, ARGV[2], 12) > 0 and cmp(old, 12, ARGV[4], 1) <= 0 then stored = 0 end
end
if stored == 1 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
if holder then redis.call('DEL', KEYS[2]) end
return stored`

// releaseLeaseScript deletes a lease only if it is still ours: an expired
// lease taken over by another filler must not be released by us.
var releaseLeaseScript = `
if redis.pcall('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

// Lease implements Leaser: SET <leaseKey> <random token> NX PX ttl.
func (s *RedisStore) Lease(ctx context.Context, key string, ttl time.Duration) (token string, held bool, err error) {
	if s.cluster && strings.ContainsAny(key, "{}") {
		return "", false, errNoLease
	}
	if key == "" || ttl <= 0 {
		return "", false, errNoLease
	}
	token = tokenString(NewToken())
	err = s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		var err error
		held, err = s.client.SetNX(ctx, leaseKey(key), token, ttl).Result()
		return err
	})
	if err != nil || !held {
		return "", false, err
	}
	return token, true, nil
}

// leaseAndGet is Lease followed, in the same round trip, by a GET of the
// entry: SET NX runs first, so when we get the lease, whatever its
// previous holder stored before releasing it is in the GET's answer.
func (s *RedisStore) leaseAndGet(ctx context.Context, key string, ttl time.Duration) (token string, held bool, value []byte, err error) {
	if s.cluster && strings.ContainsAny(key, "{}") {
		return "", false, nil, errNoLease
	}
	if key == "" || ttl <= 0 {
		return "", false, nil, errNoLease
	}
	token = tokenString(NewToken())
	err = s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		p := s.client.Pipeline()
		set := p.SetNX(ctx, leaseKey(key), token, ttl)
		get := s.getEntry(ctx, p, key)
		// Exec reports the first failed command; each is read below (a
		// WRONGTYPE of the GET is garbage, not a failure).
		_, _ = p.Exec(ctx)
		var err error
		if held, err = set.Result(); err != nil || !held {
			return err
		}
		value, err = s.entryBytes(get)
		if errors.Is(err, redis.Nil) || isWrongType(err) {
			// No entry, or another program's key of another type under
			// its name: garbage, which our fill replaces (as Fetch
			// treats it).
			value, err = nil, nil
		}
		return err
	})
	if err != nil || !held {
		return "", false, nil, err
	}
	return token, true, value, nil
}

// PutLeased implements Leaser in one round trip: the script (EVAL, not
// EVALSHA: a restarted or failed-over Redis has an empty script cache, and
// inside a pipeline go-redis cannot fall back from NOSCRIPT; Redis caches
// the compiled script by its digest anyway) and a PEXPIRE GT per version,
// as PutFor sends. A Cluster client sends the script to the node of the
// entry's slot and the PEXPIREs to theirs.
func (s *RedisStore) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string, token string) error {
	if ttl <= 0 {
		return s.ReleaseLease(ctx, key, token)
	}
	var stored int64
	err := s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		p := s.client.Pipeline()
		// A stored entry "created after ours" but later than now (plus a
		// second for clocks) is garbage or from a clock far ahead: it is
		// overwritten, or it would block the key until its TTL ends.
		var limit [8]byte
		binary.BigEndian.PutUint64(limit[:], uint64(time.Now().Add(time.Second).UnixNano()))
		cmd := p.Eval(ctx, putLeasedScript, []string{key, leaseKey(key)}, token, value, max(ttl.Milliseconds(), 1), limit[:])
		s.extend(ctx, p, ttl, versions)
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		var err error
		stored, err = cmd.Int64()
		return err
	})
	if err != nil {
		return err
	}
	if stored != 1 {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseLease implements Leaser.
func (s *RedisStore) ReleaseLease(ctx context.Context, key, token string) error {
	if token == "" {
		return nil
	}
	return s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		return s.client.Eval(ctx, releaseLeaseScript, []string{leaseKey(key)}, token).Err()
	})
}
