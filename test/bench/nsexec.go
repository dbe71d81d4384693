package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/dnft/dnft/test/harness"
)

// Proc is the outcome of a program run by [execIn].
type Proc struct {
	Stdout, Stderr string
	// Code is the exit status (-1 when the program did not run or was
	// killed).
	Code int
}

// execIn runs a program inside ns. The child is forked from a thread that
// has entered the namespace, so it starts there directly, as iptables does
// under dockerd: no `ip netns exec` in the timing. err is set when the
// program could not run, was killed or exited non-zero.
func execIn(ctx context.Context, ns *harness.NS, stdin, name string, args []string) (Proc, error) {
	var stdout, stderr bytes.Buffer
	var runErr error
	var cmd *exec.Cmd
	derr := ns.Do(func() error {
		cmd = exec.CommandContext(ctx, name, args...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr = cmd.Run()
		return nil
	})
	p := Proc{Code: -1}
	if derr != nil {
		return p, derr
	}
	p.Stdout, p.Stderr = stdout.String(), stderr.String()
	if st := cmd.ProcessState; st != nil {
		p.Code = st.ExitCode()
	}
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = ctx.Err()
		}
		return p, fmt.Errorf("%s %s: %w: %s", name, clip(strings.Join(args, " ")), runErr, clip(strings.TrimSpace(p.Stderr)))
	}
	return p, nil
}

// runIn runs a program inside ns ([execIn]) and returns its standard
// output and exit code. An exit code listed in okCodes is not an error.
func runIn(ctx context.Context, ns *harness.NS, stdin, name string, args []string, okCodes ...int) (string, int, error) {
	p, err := execIn(ctx, ns, stdin, name, args)
	var ee *exec.ExitError
	if err != nil && errors.As(err, &ee) && ctx.Err() == nil {
		for _, ok := range okCodes {
			if p.Code == ok {
				return p.Stdout, p.Code, nil
			}
		}
	}
	return p.Stdout, p.Code, err
}

// GNUTime is GNU time, which [PeakRSS] needs.
const GNUTime = "/usr/bin/time"

// PeakRSS runs a program inside ns (with stdin, if not empty) and returns its peak resident memory
// in KiB, as GNU time reports it (ru_maxrss of a child it forks). The
// rusage of a child of this process is no use: Go starts children with
// vfork, so their ru_maxrss includes this process's own peak.
func PeakRSS(ctx context.Context, ns *harness.NS, stdin, name string, args []string) (int64, error) {
	f, err := os.CreateTemp("", "dnft-bench-time")
	if err != nil {
		return 0, err
	}
	f.Close()
	defer os.Remove(f.Name())
	if _, err := execIn(ctx, ns, stdin, GNUTime, append([]string{"-f", "%M", "-o", f.Name(), name}, args...)); err != nil {
		return 0, err
	}
	out, err := os.ReadFile(f.Name())
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strconv.ParseInt(lines[len(lines)-1], 10, 64)
}

// clip shortens a long command or message for an error.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
