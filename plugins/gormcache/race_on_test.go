//go:build race

package gormcache

// raceEnabled: the test binary runs under the race detector, which makes
// single-goroutine differential tests of pure functions 10x slower and
// finds nothing in them: they draw fewer cases then (the full count runs
// without -race).
const raceEnabled = true
