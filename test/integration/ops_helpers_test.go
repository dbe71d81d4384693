package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// generation reads the ruleset generation of the firewall's namespace.
func generation(ctx context.Context, t *testing.T, fw *dnft.Firewall) uint32 {
	t.Helper()
	c, err := nft.Open(ctx, fw.NetNS())
	require.NoError(t, err)
	defer c.Close()
	g, err := c.Generation(ctx)
	require.NoError(t, err)
	return g
}

// binDir is where dnftBinary builds cmd/dnft; TestMain creates and
// removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dnft-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var (
	dnftOnce sync.Once
	dnftPath string
	dnftErr  error
)

// dnftBinary builds cmd/dnft once per test process: every CLI run of
// every test uses the same binary.
func dnftBinary(t testing.TB) string {
	t.Helper()
	dnftOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dnftPath, dnftErr = harness.BuildTo(ctx, binDir, "github.com/dnft/dnft/cmd/dnft")
	})
	require.NoError(t, dnftErr)
	return dnftPath
}

// cliResult is the outcome of one dnft command.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runDNFT runs the dnft binary bin on the namespace ns with stdin. The
// error is set only when the command could not be run at all. It calls
// no testing.T method, so goroutines may use it.
func runDNFT(ctx context.Context, bin string, ns *harness.NS, stdin string, args ...string) (cliResult, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--netns", ns.Path()}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewBufferString(stdin), &o, &e
	err := cmd.Run()
	r := cliResult{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("dnft %v: %w", args, err)
	}
	return r, nil
}

// dnftCLI runs the dnft command on the namespace ns with stdin.
func dnftCLI(ctx context.Context, t *testing.T, ns *harness.NS, stdin string, args ...string) cliResult {
	t.Helper()
	r, err := runDNFT(ctx, dnftBinary(t), ns, stdin, args...)
	require.NoError(t, err)
	return r
}

// mustCLI runs a dnft command that must succeed and returns its stdout.
func mustCLI(ctx context.Context, t *testing.T, ns *harness.NS, args ...string) string {
	t.Helper()
	r := dnftCLI(ctx, t, ns, "", args...)
	require.Zero(t, r.code, "dnft %v: %s", args, r.stderr)
	return r.stdout
}

var seqRE = regexp.MustCompile(`;q=[0-9a-z]+`)

// withoutSeqs blanks the sequence numbers in element comments, which
// differ between two publications of the same bindings.
func withoutSeqs(ruleset string) string { return seqRE.ReplaceAllString(ruleset, ";q=*") }

// mustNft runs nft in the namespace.
func mustNft(ctx context.Context, t *testing.T, ns *harness.NS, args ...string) string {
	t.Helper()
	out, err := ns.Run(ctx, append([]string{"nft"}, args...)...)
	require.NoError(t, err, "nft %v: %s", args, out)
	return out
}

// addrPort is netip.AddrPortFrom.
func addrPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
