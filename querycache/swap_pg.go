package querycache

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The compare-and-swap statements. Both are atomic on the entry's row:
// ON CONFLICT ... DO UPDATE ... WHERE locks the conflicting row before it
// judges the condition, and an UPDATE that waited for a concurrent writer
// judges its WHERE again on the row that writer left (READ COMMITTED).
//
//	$1 key, $2 the new value, $3 ttl (µs), $4 the value read
func casAbsentSQL(entries string) string {
	return `INSERT INTO ` + entries + ` AS e (key, value, expires_at) VALUES ($1::bytea, $2::bytea, now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
WHERE e.expires_at <= now() OR octet_length(e.value) = 0
RETURNING 1`
}

func casSQL(entries string) string {
	return `UPDATE ` + entries + ` SET value = $2::bytea, expires_at = now() + $3::bigint * interval '1 microsecond'
WHERE key = $1::bytea AND value = $4::bytea AND expires_at > now()
RETURNING 1`
}

// CompareAndSwap implements Swapper. On success the versions are extended
// as PutFor extends them, by a second statement.
func (s *PostgresStore) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if ttl <= 0 {
		return false, nil
	}
	if value == nil {
		value = []byte{}
	}
	swapped := false
	err := s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		var row pgx.Row
		if old == nil {
			row = s.pool.QueryRow(ctx, casAbsentSQL(s.sql.entries), pgName(key), value, micros(ttl))
		} else {
			row = s.pool.QueryRow(ctx, casSQL(s.sql.entries), pgName(key), value, micros(ttl), old)
		}
		var one int
		switch err := row.Scan(&one); {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		swapped = true
		return nil
	})
	if err != nil || !swapped || len(versions) == 0 {
		return swapped, err
	}
	err = s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, extendSQL(s.sql.versions), bytesOf(versions), micros(ttl+s.opts.VersionMargin))
		return err
	})
	return true, err
}

// extendSQL is the version extension of PutFor's statement alone (see
// pgStatementsFor): $1 versions, $2 ttl+margin (µs). It must not store the
// value again: another swap may have replaced it since ours.
func extendSQL(versions string) string {
	return `UPDATE ` + versions + ` v SET expires_at = now() + $2::bigint * interval '1 microsecond'
FROM (
	SELECT l.name FROM ` + versions + ` l
	WHERE l.name = ANY($1::bytea[]) AND l.expires_at > now()
	AND l.expires_at < now() + $2::bigint * interval '1 microsecond'
	ORDER BY l.name FOR UPDATE
) l
WHERE v.name = l.name`
}
