package install

import (
	"bytes"
	"context"
	"fmt"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
)

var goLineRE = regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`)

// goLine returns the version on the `go` line of the go.mod file at path.
func goLine(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := goLineRE.FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s has no go line", path)
	}
	return string(m[1])
}

// requires returns the module paths a go.mod file requires (direct and
// indirect).
func requires(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mods []string
	inBlock := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "require (":
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "" && !strings.HasPrefix(line, "//"):
			mods = append(mods, strings.Fields(line)[0])
		case strings.HasPrefix(line, "require ") && !strings.HasSuffix(line, "("):
			mods = append(mods, strings.Fields(line)[1])
		}
	}
	return mods
}

// repoRoot is the directory of querycache.dev's go.mod (two levels up).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(data, []byte("module querycache.dev\n")) {
		t.Fatalf("%s is not querycache.dev's root (go.mod: %v)", root, err)
	}
	return root
}

// goCmd runs the go command in dir as a user would in a module of their
// own: no workspace, go.mod updated as needed, the local toolchain only
// (a go line above it must not start a download), and GOPROXY as set.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return goCmdMod(ctx, "mod", dir, args...)
}

// goCmdMod is goCmd with -mod=mode: readonly in the checkout, which the
// test must never change.
func goCmdMod(ctx context.Context, mode, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod="+mode+" -buildvcs=false")
	return cmd.CombinedOutput()
}

// unreachable reports whether go's output says a module could not be
// fetched (no proxy, no network), as opposed to a real failure.
func unreachable(out []byte) bool {
	for _, s := range []string{"dial tcp", "no such host", "connection refused", "i/o timeout",
		"TLS handshake timeout", "network is unreachable", "proxyconnect", "GOPROXY=off"} {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

// userCode is a user's package (not a main package: go build then only
// compiles, from the build cache, and links nothing).
const userCode = `package user

import (
	"gorm.io/gorm"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Use registers the cache on db.
func Use(db *gorm.DB) error {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		return err
	}
	return db.Use(gormcache.New(cache))
}
`

// TestGoLineIsTheDependenciesFloor checks that go.mod's go line is the
// highest go line of the modules in the library's graph: a higher one (it
// was 1.26.8) raises every user's own go line on go mod tidy for nothing.
// If the code itself ever needs a newer language version than every
// dependency, raise the go line and name that version here as a floor.
func TestGoLineIsTheDependenciesFloor(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	root := repoRoot(t)
	ours := goLine(t, filepath.Join(root, "go.mod"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := goCmdMod(ctx, "readonly", root, "list", "-m", "-f", "{{.Path}} {{.GoVersion}}", "all")
	if err != nil {
		if unreachable(out) {
			testenv.Unavailable(t, "the Go module proxy (GOPROXY="+os.Getenv("GOPROXY")+")", fmt.Errorf("%s", out))
		}
		t.Fatalf("go list -m all in %s: %v\n%s", root, err, out)
	}
	floor, by := "", []string(nil)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[0] == "querycache.dev" {
			continue // the main module, or a module whose go.mod the graph does not load
		}
		switch c := version.Compare("go"+f[1], "go"+floor); {
		case floor == "" || c > 0:
			floor, by = f[1], []string{f[0]}
		case c == 0:
			by = append(by, f[0])
		}
	}
	if version.Compare("go"+ours, "go"+floor) != 0 {
		t.Errorf("go.mod says go %s; the dependencies need go %s (%s): use that", ours, floor, strings.Join(by, ", "))
	}
	t.Logf("go %s, set by %s", floor, strings.Join(by, ", "))
}

// TestInstallAsDependency creates a user's module that requires
// querycache.dev (replaced by this checkout, as `go get` would fetch it by
// its path), imports the engine and the GORM plugin, and runs `go mod tidy`
// and `go build` there. It checks that
//   - a user's go line equal to ours, or above it, is left alone (go 1.26.8
//     here raised every 1.26.x user's line);
//   - a line below ours is raised to exactly ours: the dependencies need
//     nothing newer than our go line says;
//   - the user's go.sum names no module that only examples/ or bench/
//     require (they are modules of their own for that reason).
func TestInstallAsDependency(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod tidy and go build in a temporary module")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	root := repoRoot(t)
	ours := goLine(t, filepath.Join(root, "go.mod"))
	local := strings.TrimPrefix(runtime.Version(), "go")
	if version.Compare("go"+ours, "go"+local) > 0 {
		t.Fatalf("go.mod says go %s, above the toolchain running the tests (%s)", ours, local)
	}

	// Modules only the nested modules need: in their go.mod files and not
	// in the library's module graph.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := goCmdMod(ctx, "readonly", root, "list", "-m", "-f", "{{.Path}}", "all")
	if err != nil {
		if unreachable(out) {
			testenv.Unavailable(t, "the Go module proxy (GOPROXY="+os.Getenv("GOPROXY")+")", fmt.Errorf("%s", out))
		}
		t.Fatalf("go list -m all in %s: %v\n%s", root, err, out)
	}
	libGraph := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		libGraph[p] = true
	}
	nestedOnly := map[string]bool{"github.com/go-gorm/caches/v4": true}
	for _, nested := range []string{"examples", "bench"} {
		gomod := filepath.Join(root, nested, "go.mod")
		if _, err := os.Stat(gomod); err != nil {
			t.Fatalf("%s is not a module of its own: %v", nested, err)
		}
		if l := goLine(t, gomod); version.Compare("go"+l, "go"+ours) > 0 {
			t.Errorf("%s/go.mod says go %s, above the library's %s (go.work needs the highest)", nested, l, ours)
		}
		for _, p := range requires(t, gomod) {
			if !libGraph[p] && p != "querycache.dev" {
				nestedOnly[p] = true
			}
		}
	}

	major, minor, ok := parseMinor(ours)
	if !ok {
		t.Fatalf("cannot read go %s", ours)
	}
	cases := []struct {
		name, user, want string
		build            bool
	}{
		{"equal", ours, ours, true},
		{"above", fmt.Sprintf("%d.%d.%d", major, minor, patch(ours)+1), "", false},
		{"below", fmt.Sprintf("%d.%d.0", major, minor-1), ours, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				c.want = c.user
			}
			if version.Compare("go"+c.user, "go"+local) > 0 {
				t.Skipf("go %s is above the local toolchain %s", c.user, local)
			}
			dir := t.TempDir()
			gomod := fmt.Sprintf("module example.com/user\n\ngo %s\n\nrequire querycache.dev v0.0.0\n\nreplace querycache.dev => %s\n", c.user, root)
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "user.go"), []byte(userCode), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if out, err := goCmd(ctx, dir, "mod", "tidy"); err != nil {
				if unreachable(out) {
					testenv.Unavailable(t, "the Go module proxy (GOPROXY="+os.Getenv("GOPROXY")+")", fmt.Errorf("%s", out))
				}
				t.Fatalf("go mod tidy: %v\n%s", err, out)
			}
			if got := goLine(t, filepath.Join(dir, "go.mod")); got != c.want {
				t.Errorf("user's go line %s became %s after go mod tidy, want %s", c.user, got, c.want)
			}
			sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(sum), "\n") {
				if f := strings.Fields(line); len(f) > 0 && nestedOnly[f[0]] {
					t.Errorf("the user's go.sum lists %s, which only examples/ or bench/ need: %s", f[0], line)
				}
			}
			if c.build {
				if out, err := goCmd(ctx, dir, append(append([]string{"build"}, testenv.GoBuildFlags()...), "-o", os.DevNull, ".")...); err != nil {
					t.Fatalf("go build: %v\n%s", err, out)
				}
			}
		})
	}
}

// parseMinor splits "1.26.0" (or "1.26") into 1 and 26.
func parseMinor(v string) (major, minor int, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// patch returns the patch number of "1.26.3" (3), or 0.
func patch(v string) int {
	parts := strings.Split(v, ".")
	if len(parts) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(parts[2])
	return n
}
