package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// dockerBinary is the program that `dnft docker` runs. It is a binary of
// its own (cmd/dnft-docker) so that dnft's other commands do not load the
// Docker Engine API client, which would double their start-up.
const dockerBinary = "dnft-docker"

func newDockerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "docker [--host ADDR] [--once] [dockerd's flags]",
		Short: "Follow a dockerd started with --iptables=false and program its firewall",
		Long: `Make a Docker daemon started with --iptables=false (and no iptables binary
on the host) behave like the same daemon with its own iptables rules.

dnft docker runs dnft-docker, which must be installed next to dnft (or on
PATH), with the same arguments: see dnft docker --help for its flags.`,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			bin, err := findDockerBinary()
			if err != nil {
				return err
			}
			argv := []string{bin}
			if a.netns != "" {
				argv = append(argv, "--netns", a.netns)
			}
			// Exec rather than run: dnft-docker gets this process, its
			// signals and its exit status, as a systemd unit expects.
			return syscall.Exec(bin, append(argv, args...), os.Environ())
		},
	}
}

// findDockerBinary finds dnft-docker next to the running dnft, else on
// PATH.
func findDockerBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), dockerBinary)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(dockerBinary); err == nil {
		return p, nil
	}
	return "", errors.New("dnft docker runs " + dockerBinary + ", which is neither next to dnft nor on PATH (go build -o DIR ./cmd/dnft ./cmd/dnft-docker)")
}
