package bench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dnft/dnft/test/harness"
)

// binaries returns the directory holding the dnft and dnft-bench
// binaries: $DNFT_BENCH_BIN when set (run.sh builds them there), else a
// fresh build in b's temporary directory.
func binaries(b *testing.B) string {
	b.Helper()
	if d := os.Getenv("DNFT_BENCH_BIN"); d != "" {
		return d
	}
	dir := b.TempDir()
	for _, pkg := range []string{"github.com/dnft/dnft/cmd/dnft", "github.com/dnft/dnft/cmd/dnft-bench"} {
		if _, err := harness.BuildTo(context.Background(), dir, pkg); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// hasCommand reports whether the dnft CLI at bin lists the command name
// in its help.
func hasCommand(b *testing.B, bin, name string) bool {
	b.Helper()
	out, err := exec.Command(bin, "--help").Output()
	if err != nil {
		b.Fatalf("%s --help: %v", bin, err)
	}
	_, cmds, _ := strings.Cut(string(out), "Available Commands:")
	for _, l := range strings.Split(cmds, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}
