//go:build !race

package querycache

// raceEnabled: see race_on_test.go.
const raceEnabled = false
