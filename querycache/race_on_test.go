//go:build race

package querycache

// raceEnabled: the test binary runs under the race detector, which makes
// single-goroutine loops about 10x slower and finds nothing in them: the
// heap-budget test writes fewer rows then (still several times what the
// budget holds).
const raceEnabled = true
