//go:build race

package sqlinspect

// raceEnabled: the test binary runs under the race detector, which makes
// the single-goroutine hang detectors (TestInspectLinear,
// TestLinearDialects) about 10x slower and finds nothing in them: they
// feed inputs a quarter of the size then, which a quadratic scan still
// takes far past their bound to read under the detector.
const raceEnabled = true
