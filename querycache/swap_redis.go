package querycache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// casScript replaces an entry only if it holds what the caller read.
//
//	KEYS[1] the entry
//	ARGV[1] "1" when the caller read an entry, "0" when it read none
//	ARGV[2] the entry it read, ARGV[3] the new entry, ARGV[4] TTL in ms
//
// A key of another type under the entry's name (another program's list)
// reads as no entry, as in putLeasedScript, and so does an empty value. Lua compares strings with ==
// byte for byte.
var casScript = `
local cur = redis.pcall('GET', KEYS[1])
if type(cur) ~= 'string' or cur == '' then cur = false end
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1`

// CompareAndSwap implements Swapper in one round trip: a script compares
// and sets the entry, and the versions are extended beside it in the same
// pipeline (as PutFor does; on a cluster they may live in other slots).
func (s *RedisStore) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if len(old) == 0 {
		old = nil // an empty value is none (Swapper), as Fetch may read it
	}
	if ttl <= 0 {
		return false, nil
	}
	had := "1"
	if old == nil {
		had, old = "0", []byte{}
	}
	var n int64
	err := s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		p := s.client.Pipeline()
		cmd := p.Eval(ctx, casScript, []string{key}, had, old, value, max(ttl.Milliseconds(), 1))
		s.extend(ctx, p, ttl, versions)
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		var err error
		n, err = cmd.Int64()
		return err
	})
	return n == 1, err
}
