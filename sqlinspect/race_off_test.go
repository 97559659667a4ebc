//go:build !race

package sqlinspect

// raceEnabled: see race_on_test.go.
const raceEnabled = false
