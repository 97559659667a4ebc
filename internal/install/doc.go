// Package install holds the test that querycache.dev installs as a
// dependency the usual way: a user's module requiring it, run through
// `go mod tidy` and `go build`, keeps its own `go` line and gets no module
// that only the demo (examples/) or the benchmarks (bench/) need.
package install
