//go:build race

package testenv

// Race reports whether the test binary runs under the race detector, which
// makes single-goroutine loops about 10x slower and finds nothing in them:
// tests of pure functions, hang detectors and heap measurements draw fewer
// cases or smaller inputs then, and run in full without -race.
const Race = true
