package storetest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/querycache"
	"querycache.dev/querycache/storetest"
)

// refStore is a minimal correct store (and Swapper) in memory, with
// switches that break one promise each, to show the suite catches them.
type refStore struct {
	mu       sync.Mutex
	entries  map[string]refItem
	versions map[string]uint64
	broken   string
}

type refItem struct {
	data     []byte
	deadline time.Time
}

func newRef(broken string) *refStore {
	return &refStore{entries: map[string]refItem{}, versions: map[string]uint64{}, broken: broken}
}

func (s *refStore) entryKey(key string) string {
	if s.broken == "truncated-keys" && len(key) > 250 {
		key = key[:250]
	}
	if s.broken == "one-keyspace" {
		return key
	}
	return "e" + key
}

func (s *refStore) versionKey(name string) string {
	if s.broken == "truncated-keys" && len(name) > 250 {
		name = name[:250]
	}
	if s.broken == "one-keyspace" {
		return name
	}
	return "v" + name
}

func (s *refStore) get(key string) []byte {
	it, ok := s.entries[s.entryKey(key)]
	if !ok || (s.broken != "no-expiry" && !time.Now().Before(it.deadline)) || len(it.data) == 0 {
		return nil
	}
	return it.data
}

func (s *refStore) Fetch(_ context.Context, key string, versions []string) ([]byte, []uint64, error) {
	s.mu.Lock()
	var v []byte
	if key != "" {
		v = bytes.Clone(s.get(key))
	}
	toks := make([]uint64, len(versions))
	for i, name := range versions {
		tok, ok := s.versions[s.versionKey(name)]
		if !ok {
			switch s.broken {
			case "zero-token":
				continue
			case "racy-create":
				s.mu.Unlock()
				time.Sleep(time.Millisecond)
				s.mu.Lock()
			}
			tok = querycache.NewToken()
			s.versions[s.versionKey(name)] = tok
			if s.broken == "one-keyspace" {
				delete(s.entries, name) // one key: the version replaces the entry
			}
		}
		toks[i] = tok
	}
	s.mu.Unlock()
	return v, toks, nil
}

func (s *refStore) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == "one-keyspace" {
		delete(s.versions, key) // one key: the entry replaces the version
	}
	s.entries[s.entryKey(key)] = refItem{bytes.Clone(value), time.Now().Add(ttl)}
	return nil
}

func (s *refStore) Bump(_ context.Context, versions []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range versions {
		if s.broken == "bump-keeps" {
			if _, ok := s.versions[s.versionKey(name)]; ok {
				continue
			}
		}
		s.versions[s.versionKey(name)] = querycache.NewToken()
	}
	return nil
}

func (s *refStore) Close() error { return nil }

func (s *refStore) CompareAndSwap(_ context.Context, key string, old, value []byte, ttl time.Duration, _ []string) (bool, error) {
	if ttl <= 0 && s.broken != "swap-ignores-ttl" {
		return false, nil
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	s.mu.Lock()
	cur := s.get(key)
	if s.broken == "racy-swap" {
		s.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if old == nil && cur != nil || old != nil && (len(old) == 0 || !bytes.Equal(cur, old)) {
		return false, nil
	}
	s.entries[s.entryKey(key)] = refItem{bytes.Clone(value), time.Now().Add(ttl)}
	return true, nil
}

// refLeaser is refStore with fill leases.
type refLeaser struct {
	*refStore
	leases map[string]refLease
}

type refLease struct {
	token    string
	deadline time.Time
}

func newRefLeaser(broken string) *refLeaser {
	return &refLeaser{refStore: newRef(broken), leases: map[string]refLease{}}
}

func (s *refLeaser) holder(key string) (string, bool) {
	l, ok := s.leases[key]
	if !ok || !time.Now().Before(l.deadline) {
		return "", false
	}
	return l.token, true
}

func (s *refLeaser) Lease(_ context.Context, key string, ttl time.Duration) (string, bool, error) {
	s.mu.Lock()
	_, taken := s.holder(key)
	if s.broken == "lease-racy" {
		s.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if taken {
		return "", false, nil
	}
	tok := strconv.FormatUint(querycache.NewToken(), 16)
	s.leases[key] = refLease{tok, time.Now().Add(ttl)}
	return tok, true, nil
}

func (s *refLeaser) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration, _ []string, token string) error {
	s.mu.Lock()
	h, held := s.holder(key)
	if held && h != token && s.broken != "lease-put-ignores-holder" {
		s.mu.Unlock()
		return querycache.ErrLeaseLost
	}
	if held {
		delete(s.leases, key)
	}
	s.mu.Unlock()
	return s.Put(ctx, key, value, ttl)
}

func (s *refLeaser) ReleaseLease(_ context.Context, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, held := s.holder(key); held && (h == token || s.broken == "lease-release-any") {
		delete(s.leases, key)
	}
	return nil
}

func TestReferenceStorePasses(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) querycache.Store { return newRef("") })
	})
	t.Run("leases", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) querycache.Store { return newRefLeaser("") })
	})
}

// TestBrokenHelper runs the suite on the store broken as
// STORETEST_BROKEN says; TestBrokenStoresAreCaught runs it in a child
// process and expects it to fail.
func TestBrokenHelper(t *testing.T) {
	broken := os.Getenv("STORETEST_BROKEN")
	if broken == "" {
		t.Skip("run by TestBrokenStoresAreCaught")
	}
	// Only the broken store's own subtest needs to wait for expiry.
	storetest.RunOptions(t, storetest.Options{ExpiryWait: 3 * time.Second}, func(t *testing.T) querycache.Store {
		if strings.HasPrefix(broken, "lease-") {
			return newRefLeaser(broken)
		}
		return newRef(broken)
	})
}

// TestBrokenStoresAreCaught: each broken promise fails the subtest that
// pins it down.
func TestBrokenStoresAreCaught(t *testing.T) {
	cases := map[string]string{
		"racy-create":              "VersionCreatedOnce",
		"zero-token":               "FetchMissing",
		"bump-keeps":               "BumpFreshTokens",
		"truncated-keys":           "HostileKeys",
		"one-keyspace":             "KeysAndVersionsDoNotMix",
		"no-expiry":                "Expiry",
		"racy-swap":                "Swapper/FromAbsentOnce",
		"swap-ignores-ttl":         "Swapper/NonPositiveTTL",
		"lease-racy":               "Leaser/HeldOnce",
		"lease-release-any":        "Leaser/Release",
		"lease-put-ignores-holder": "Leaser/Lost",
	}
	for broken, subtest := range cases {
		t.Run(broken, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenHelper$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "STORETEST_BROKEN="+broken)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store broken with %s:\n%s", broken, out)
			}
			if want := "--- FAIL: TestBrokenHelper/" + subtest + " "; !strings.Contains(string(out), want) {
				t.Fatalf("a store broken with %s did not fail %s:\n%s", broken, subtest, out)
			}
		})
	}
}
