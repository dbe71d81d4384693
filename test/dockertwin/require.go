package dockertwin

import (
	"os"
	"os/exec"
	"testing"

	"github.com/dnft/dnft/test/harness"
)

// RequireDocker skips the test unless it runs as root with dockerd,
// containerd, runc and a static busybox installed (Debian: docker.io and
// busybox-static). When the CI environment variable is set it fails
// instead, so CI cannot pass by skipping the Docker twin.
func RequireDocker(t testing.TB) {
	t.Helper()
	harness.RequireRoot(t)
	for _, b := range []string{"dockerd", "containerd", "runc", "docker-proxy", "busybox", "go"} {
		if _, err := exec.LookPath(b); err != nil {
			why := "dockertwin: needs " + b + " (apt-get install docker.io busybox-static)"
			if os.Getenv("CI") != "" {
				t.Fatal(why + " (CI is set, so not skipping)")
			}
			t.Skip(why)
		}
	}
}
