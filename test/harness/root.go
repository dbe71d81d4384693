package harness

import (
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test unless it runs as root with the ip command
// available. When the CI environment variable is set it fails the test
// instead, so a misconfigured CI job cannot pass by skipping everything.
func RequireRoot(t testing.TB) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs the ip command (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("harness: " + why + " (CI is set, so not skipping)")
	}
	t.Skip("harness: " + why)
}
