package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildLimit bounds one `go build`: a cold build on a loaded 2-core
// machine takes tens of seconds.
const buildLimit = 5 * time.Minute

// Build builds the Go main package pkg (an import path such as
// "github.com/dnft/dnft/cmd/dnft", or a directory relative to the test's
// working directory) into t's temporary directory and returns the
// binary's path. Go's build cache makes a repeated build of an unchanged
// package cheap. It fails the test if the build fails.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildLimit)
	defer cancel()
	bin, err := BuildTo(ctx, t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildTo is [Build] for callers without a testing.TB (a TestMain, a
// tool): it builds pkg into dir, naming the binary after the package's
// last path element, and returns its path.
func BuildTo(ctx context.Context, dir, pkg string) (string, error) {
	goCmd, err := goCommand()
	if err != nil {
		return "", err
	}
	name := path.Base(strings.TrimRight(filepath.ToSlash(pkg), "/"))
	if name == "." || name == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("harness: build %s: %w", pkg, err)
		}
		name = filepath.Base(wd)
	}
	bin := filepath.Join(dir, name)
	out, err := exec.CommandContext(ctx, goCmd, "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("harness: go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// goCommand finds the go command: on PATH, else where the official
// tarball installs it.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	const fallback = "/usr/local/go/bin/go"
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", fmt.Errorf("harness: the go command is neither on PATH nor at %s", fallback)
}
