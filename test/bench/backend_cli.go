package bench

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// cliBackend programs through the dnft command, one process per
// operation, as a script or a runtime that execs a binary (as Docker execs
// iptables) does. The process is forked inside the namespace, like the
// iptables baselines, so it opens the namespace it runs in. Pre-filling,
// which is untimed, goes through the library.
type cliBackend struct {
	ns      *harness.NS
	bin     string
	cleanup func()
}

// CLIName is the name of the dnft command's backend.
const CLIName = "dnft CLI"

func newCLI(ctx context.Context, ns *harness.NS) (*cliBackend, error) {
	bin, cleanup, err := dnftBinary(ctx)
	if err != nil {
		return nil, err
	}
	return &cliBackend{ns: ns, bin: bin, cleanup: cleanup}, nil
}

// dnftBinary returns the dnft command to run: $DNFT_BENCH_BIN/dnft when
// set (run.sh builds it there, statically), else a build into a new
// temporary directory, which cleanup removes (Go's build cache makes it
// quick after the first).
func dnftBinary(ctx context.Context) (bin string, cleanup func(), err error) {
	if d := os.Getenv("DNFT_BENCH_BIN"); d != "" {
		return filepath.Join(d, "dnft"), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "dnft-bench-bin")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	if bin, err = harness.BuildTo(ctx, dir, "github.com/dnft/dnft/cmd/dnft"); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

func (c *cliBackend) Name() string { return CLIName }

func (c *cliBackend) run(ctx context.Context, args ...string) error {
	_, err := execIn(ctx, c.ns, "", c.bin, args)
	return err
}

func (c *cliBackend) Init(ctx context.Context) error {
	args := []string{"init"}
	if !daemonConfig.UserlandProxy {
		args = append(args, "--userland-proxy=false")
	}
	return c.run(ctx, args...)
}

func (c *cliBackend) CreateNetwork(ctx context.Context, k int) error {
	n := networkConfig(k)
	return c.run(ctx, "network", "create", n.Name, "--bridge", n.Bridge, "--subnet", n.Subnet4.String())
}

// Publish runs one `dnft port publish` per container address (one for a
// single binding).
func (c *cliBackend) Publish(ctx context.Context, bs []portmap.Binding) error {
	return c.perContainer(ctx, "publish", bs)
}

func (c *cliBackend) Unpublish(ctx context.Context, bs []portmap.Binding) error {
	return c.perContainer(ctx, "unpublish", bs)
}

func (c *cliBackend) perContainer(ctx context.Context, verb string, bs []portmap.Binding) error {
	var order []netip.Addr
	specs := map[netip.Addr][]string{}
	for _, b := range bs {
		if specs[b.ContainerIP] == nil {
			order = append(order, b.ContainerIP)
		}
		specs[b.ContainerIP] = append(specs[b.ContainerIP], "-p",
			strconv.Itoa(int(b.HostPort))+":"+strconv.Itoa(int(b.ContainerPort))+"/"+string(b.Proto))
	}
	for _, a := range order {
		if err := c.run(ctx, append([]string{"port", verb, networkName(0), a.String()}, specs[a]...)...); err != nil {
			return err
		}
	}
	return nil
}

// library runs fn with a Firewall on the namespace, for the untimed
// pre-fill.
func (c *cliBackend) library(ctx context.Context, fn func(*dnftBackend) error) error {
	fw, err := dnft.Open(ctx, c.ns.Path())
	if err != nil {
		return err
	}
	defer fw.Close()
	return fn(&dnftBackend{fw: fw})
}

func (c *cliBackend) PrefillNetworks(ctx context.Context, from, to int) error {
	return c.library(ctx, func(d *dnftBackend) error { return d.PrefillNetworks(ctx, from, to) })
}

func (c *cliBackend) PrefillBindings(ctx context.Context, bs []portmap.Binding) error {
	return c.library(ctx, func(d *dnftBackend) error { return d.PrefillBindings(ctx, bs) })
}

func (c *cliBackend) Close() error {
	c.cleanup()
	return nil
}
