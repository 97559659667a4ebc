//go:build !race

package gormcache

// raceEnabled: see race_on_test.go.
const raceEnabled = false
