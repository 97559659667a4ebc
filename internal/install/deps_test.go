package install

// TestInstallAsDependency builds a user's module with the test binary's
// flags (testenv.GoBuildFlags), taking the library's packages from the
// build cache. Importing them here makes `go test` compile them before
// this test runs rather than beside it, where both compiled them.
import (
	_ "querycache.dev/plugins/gormcache"
	_ "querycache.dev/querycache"
)
