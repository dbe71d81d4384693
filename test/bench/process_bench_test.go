package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkProcessStart measures what any command pays before its first
// useful system call, the floor of the "dnft CLI" backend: an empty Go
// program (built with the same Go, statically, as run.sh builds dnft), and
// `dnft version` (dnft's start-up alone), each started in a namespace as
// the CLI backend's commands are.
func BenchmarkProcessStart(b *testing.B) {
	s := scale(b)
	ctx := context.Background()
	empty := emptyProgram(b)
	dnft, cleanup, err := dnftBinary(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cleanup)
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{emptyProgramName, []string{empty}},
		{"dnft version", []string{dnft, "version"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				ns, del, err := NewNS(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer del()
				var ds []time.Duration
				// Starts are cheap: three times the usual repetitions.
				s3 := s
				s3.Reps *= 3
				o, err := s3.RepeatWarm(ctx, func(ctx context.Context, _ int) error {
					return timed(&ds, func() error {
						_, err := execIn(ctx, ns, "", tc.argv[0], tc.argv[1:])
						return err
					})
				})
				if err != nil {
					b.Fatal(err)
				}
				return []Result{durations(Result{Workload: "process-start", Backend: tc.name}, ds, o)}
			})
		})
	}
}

// emptyProgramName is the backend name of an empty Go program's start.
const emptyProgramName = "empty Go program"

// emptyProgram builds an empty Go program (`func main() {}`) with the
// same Go, statically, as run.sh builds dnft, and returns its path: the
// floor of any command's start.
func emptyProgram(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module empty\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", empty, ".")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the empty program: %v: %s", err, out)
	}
	return empty
}
