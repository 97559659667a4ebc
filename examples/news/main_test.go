package main

import "testing"

// TestDemoRuns runs the demo end to end, so that the first program a
// newcomer runs keeps working.
func TestDemoRuns(t *testing.T) {
	main()
}
