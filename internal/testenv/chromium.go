package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns a headless-capable Chromium: CHROMIUM when it names
// one, else Debian's chromium package (which .ci/run installs) or another
// Chromium on PATH. Without one it skips t, or fails it under
// QUERYCACHE_REQUIRE_SERVICES=1; what says which test needs it.
func Chromium(t testing.TB, what string) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (chromium, chromium-browser or google-chrome on PATH, or CHROMIUM=/path): install Debian's chromium package (apt-get install -y chromium) to run " + what
	if Required() {
		t.Fatal(msg + "; QUERYCACHE_REQUIRE_SERVICES=1 makes this a failure")
	}
	t.Skip(msg)
	return ""
}
