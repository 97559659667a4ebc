package keys

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// Hostile tests of ObjectNames.Lookup (commit 9c0bdc4): a primary-key
// read's entry key, its row's version name and a two-element version list
// built in one allocation with unsafe (lookupbuf.go). These passed: they
// show what held.

// lookupRef is what Lookup must return, built the slow way.
func lookupRef(ns Namespace, db, table, pk string, fp Fingerprint, also string) (string, []string) {
	return ns.Object(db, table, pk, fp), []string{ns.ObjectVersion(table, pk), also}
}

// independentKey spells Object's key out by hand, from part and the
// fingerprint's base64 (not through Object or ObjectNames).
func independentKey(prefix, db, table, pk string, fp Fingerprint) string {
	return prefix + "o:" + part(db, maxDBPart) + ":" + part(table, maxTablePart) + ":" + part(pk, maxPKPart) + ":" + fp.String()
}

// h2PKs are primary keys of every length up to past the hashed bound,
// whose names fall on both sides of every size class of lookupBuffer
// (the escaped ones grow three-fold), and composite keys and uuids as the
// plugin spells them.
func h2PKs() []string {
	var pks []string
	for n := 0; n <= 2*maxPKPart+40; n++ {
		pks = append(pks, strings.Repeat("k", n))
		pks = append(pks, strings.Repeat(":", n/3))      // escaped: 3 bytes each
		pks = append(pks, strings.Repeat("a%", n/4)+"#") // escapes mixed in
		pks = append(pks, strings.Repeat("é", n/2))      // multi-byte, not escaped
	}
	pks = append(pks,
		JoinPK([]string{"a", "b"}), JoinPK([]string{"a,b", ""}), JoinPK([]string{"a", ",b"}),
		JoinPK([]string{"%2C", "x"}), JoinPK([]string{"1", "2", "3"}),
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"\x00", "\n", " ", "{", "}", "\x7f", "o:main:users:1",
	)
	return pks
}

// TestHostileLookupH2MatchesEverySize: for prefixes, databases and tables
// of several lengths (so that the names' total size crosses every size
// class boundary of lookupBuffer, and the 224-byte limit), Lookup returns
// exactly Object and ObjectVersion, spelled independently too; the key and
// the version name do not overlap; the list has capacity 2 (an append
// copies it), and writing into it or appending to it does not change the
// key or the version name.
func TestHostileLookupH2MatchesEverySize(t *testing.T) {
	for _, prefix := range []string{"", "p:", strings.Repeat("x", 64)} {
		for _, table := range []string{"t", "users", strings.Repeat("t", 40), "a:b", strings.Repeat("t", 200)} {
			ns := NewNamespace(prefix)
			on := ns.ObjectNames("main", table)
			for _, pk := range h2PKs() {
				fp := Sum([]byte(prefix + table + pk))
				key, vs := on.Lookup(pk, fp, "also")
				wk, wv := lookupRef(ns, "main", table, pk, fp, "also")
				if key != wk || len(vs) != 2 || vs[0] != wv[0] || vs[1] != "also" {
					t.Fatalf("%q %q %q: Lookup = %q %q, want %q %q", prefix, table, pk, key, vs, wk, wv)
				}
				if ik := independentKey(prefix, "main", table, pk, fp); key != ik {
					t.Fatalf("%q %q %q: key %q, spelled out %q", prefix, table, pk, key, ik)
				}
				if cap(vs) != 2 {
					t.Fatalf("%q: the list's capacity is %d: an append would write into the names' bytes", pk, cap(vs))
				}
				kp, vp := uintptr(unsafe.Pointer(unsafe.StringData(key))), uintptr(unsafe.Pointer(unsafe.StringData(vs[0])))
				if kp < vp+uintptr(len(vs[0])) && vp < kp+uintptr(len(key)) {
					t.Fatalf("%q: key and version name overlap", pk)
				}
				lp := uintptr(unsafe.Pointer(unsafe.SliceData(vs)))
				if kp < lp+2*unsafe.Sizeof("") && lp < kp+uintptr(len(key)) {
					t.Fatalf("%q: the list overlaps the key's bytes", pk)
				}
				grown := append(vs, "z")
				grown[0], grown[1] = "changed", "changed"
				vs[0], vs[1] = "modified", "modified"
				if key != wk || on.key == "" {
					t.Fatalf("%q: writing into the list changed the key to %q", pk, key)
				}
			}
		}
	}
}

// TestHostileLookupH2SurvivesGC: lookups from many goroutines, some
// keeping only the key, some only the version name, some only the list,
// while garbage of the same size classes is allocated and collected (any
// object the collector freed too early would be reused and overwritten):
// every kept string is still what it was. Run under -race.
func TestHostileLookupH2SurvivesGC(t *testing.T) {
	ns := NewNamespace("app:")
	on := ns.ObjectNames("main", "users")
	pks := h2PKs()
	type kept struct {
		pk, key, ver string
		list         []string
	}
	var (
		mu  sync.Mutex
		all []kept
		wg  sync.WaitGroup
	)
	stopChurn := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		var sink [][]byte
		for i := 0; ; i++ {
			select {
			case <-stopChurn:
				return
			default:
			}
			b := make([]byte, 64+(i%13)*16)
			for j := range b {
				b[j] = '!'
			}
			sink = append(sink, b)
			if len(sink) > 4096 {
				sink = sink[:0]
				runtime.GC()
			}
		}
	})
	for g := range 8 {
		wg.Go(func() {
			var mine []kept
			for i := range 3000 {
				pk := pks[(i*7+g)%len(pks)]
				fp := Sum([]byte(pk))
				key, vs := on.Lookup(pk, fp, ns.BulkVersion("users"))
				switch i % 3 {
				case 0:
					mine = append(mine, kept{pk: pk, key: key})
				case 1:
					mine = append(mine, kept{pk: pk, ver: vs[0]})
				default:
					mine = append(mine, kept{pk: pk, list: vs})
				}
				if i%500 == 0 {
					runtime.GC()
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	for range 3 {
		runtime.GC()
	}
	close(stopChurn)
	churn.Wait()
	for _, k := range all {
		fp := Sum([]byte(k.pk))
		switch {
		case k.key != "" && k.key != ns.Object("main", "users", k.pk, fp):
			t.Fatalf("kept key of %q changed: %q", k.pk, k.key)
		case k.ver != "" && k.ver != ns.ObjectVersion("users", k.pk):
			t.Fatalf("kept version of %q changed: %q", k.pk, k.ver)
		case k.list != nil && (k.list[0] != ns.ObjectVersion("users", k.pk) || k.list[1] != ns.BulkVersion("users")):
			t.Fatalf("kept list of %q changed: %q", k.pk, k.list)
		}
	}
}

// TestHostileLookupH2NoSharedNames: distinct primary keys never share a
// version name (except the hashed ones' digest, which differs too) and
// distinct (pk, fingerprint) pairs never share a key; one pk under two
// fingerprints shares its version name only.
func TestHostileLookupH2NoSharedNames(t *testing.T) {
	ns := NewNamespace("p:")
	on := ns.ObjectNames("db", "t")
	keysSeen := map[string]string{}
	versSeen := map[string]string{}
	pkSeen := map[string]bool{}
	for _, pk := range h2PKs() {
		if pkSeen[pk] {
			continue // h2PKs repeats some keys
		}
		pkSeen[pk] = true
		var ver string
		for i, fp := range []Fingerprint{Sum([]byte(pk)), Sum([]byte("other"))} {
			key, vs := on.Lookup(pk, fp, "b")
			id := fmt.Sprintf("%q/%d", pk, i)
			if prev, ok := keysSeen[key]; ok {
				t.Fatalf("%s and %s share the key %q", prev, id, key)
			}
			keysSeen[key] = id
			if i == 1 && vs[0] != ver {
				t.Fatalf("%q: two fingerprints, two version names %q %q", pk, ver, vs[0])
			}
			ver = vs[0]
		}
		if prev, ok := versSeen[ver]; ok && prev != pk {
			t.Fatalf("%q and %q share the version name %q", prev, pk, ver)
		}
		versSeen[ver] = pk
	}
}

// FuzzHostileLookupPair: for two primary keys (and two fingerprints) in
// one table, Lookup agrees with Object and ObjectVersion, and two lookups
// share a key exactly when their escaped primary keys and fingerprints are
// equal, and a version name exactly when their escaped primary keys are:
// never for two different primary keys.
func FuzzHostileLookupPair(f *testing.F) {
	f.Add("p:", "main", "users", "1", "2", true)
	f.Add("", "d", "a:b", "c", ":c", false)
	f.Add("x", "d", "t", strings.Repeat("k", 97), strings.Repeat("k", 96), true)
	f.Add("x", "d", "t", "%3A", ":", false)
	f.Add("x", "d", "t", "#"+Sum([]byte("z")).String(), "z"+strings.Repeat(":", 40), false)
	f.Fuzz(func(t *testing.T, prefix, db, table, pk1, pk2 string, sameFP bool) {
		ns := NewNamespace(prefix)
		on := ns.ObjectNames(db, table)
		fp1 := Sum([]byte(pk1))
		fp2 := fp1
		if !sameFP {
			fp2 = Sum([]byte(pk2 + "\x00"))
		}
		k1, v1 := on.Lookup(pk1, fp1, "b1")
		k2, v2 := on.Lookup(pk2, fp2, "b2")
		for _, c := range []struct {
			pk   string
			fp   Fingerprint
			k    string
			v    []string
			also string
		}{{pk1, fp1, k1, v1, "b1"}, {pk2, fp2, k2, v2, "b2"}} {
			if c.k != ns.Object(db, table, c.pk, c.fp) || len(c.v) != 2 || c.v[0] != ns.ObjectVersion(table, c.pk) || c.v[1] != c.also {
				t.Fatalf("Lookup(%q) = %q %q", c.pk, c.k, c.v)
			}
			if c.k != independentKey(prefix, db, table, c.pk, c.fp) {
				t.Fatalf("Lookup(%q) key %q, spelled out %q", c.pk, c.k, independentKey(prefix, db, table, c.pk, c.fp))
			}
		}
		p1, p2 := part(pk1, maxPKPart), part(pk2, maxPKPart)
		if (p1 == p2) != (pk1 == pk2) {
			t.Fatalf("part(%q) = %q, part(%q) = %q", pk1, p1, pk2, p2)
		}
		if (k1 == k2) != (pk1 == pk2 && fp1 == fp2) {
			t.Fatalf("keys %q %q for %q %q", k1, k2, pk1, pk2)
		}
		if (v1[0] == v2[0]) != (pk1 == pk2) {
			t.Fatalf("version names %q %q for %q %q", v1[0], v2[0], pk1, pk2)
		}
		// The second lookup's buffer is not the first's.
		if k1 != on.namesKey(pk1, fp1) {
			t.Fatalf("the first key changed after the second lookup: %q", k1)
		}
	})
}

// namesKey is Names' key, for comparison after other lookups ran.
func (o ObjectNames) namesKey(pk string, fp Fingerprint) string {
	k, _ := o.Names(pk, fp)
	return k
}
