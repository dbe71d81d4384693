package harness

import (
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test unless it runs as root with the ip command
// and every command named in tools (for example "nft", "iptables-nft")
// available. When the CI environment variable is set it fails the test
// instead, so a misconfigured CI job cannot pass by skipping everything.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if why != "" {
			break
		}
		if _, err := exec.LookPath(tool); err != nil {
			why = "needs the " + tool + " command"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("harness: " + why + " (CI is set, so not skipping)")
	}
	t.Skip("harness: " + why)
}
