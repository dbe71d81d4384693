package bench

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// Backend programs Docker's firewall into one namespace in one way. Every
// method is one operation as the runtime would issue it; the Prefill
// methods are bulk preparation that is never timed.
type Backend interface {
	// Name identifies the backend in results ("dnft", "iptables-nft+C", …).
	Name() string
	// Init creates the daemon-level chains.
	Init(ctx context.Context) error
	// CreateNetwork creates network k; networks 0..k-1 exist.
	CreateNetwork(ctx context.Context, k int) error
	// Publish and Unpublish publish or remove bindings on network 0 in
	// one operation.
	Publish(ctx context.Context, bs []portmap.Binding) error
	Unpublish(ctx context.Context, bs []portmap.Binding) error
	// PrefillNetworks creates networks from..to-1 in bulk.
	PrefillNetworks(ctx context.Context, from, to int) error
	// PrefillBindings publishes bindings in bulk.
	PrefillBindings(ctx context.Context, bs []portmap.Binding) error
	// Close releases what the backend holds (not the namespace).
	Close() error
}

// BackendNames lists every backend, dnft (the library) and the dnft
// command first.
var BackendNames = []string{"dnft", CLIName, "iptables-nft+C", "iptables-legacy+C", "restore-nft", "restore-legacy", "nft-rules"}

// NewBackend returns the named backend bound to ns. The namespace must be
// empty apart from lo; NewBackend sets ip_forward=1 there.
func NewBackend(ctx context.Context, name string, ns *harness.NS) (Backend, error) {
	if err := ns.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, err
	}
	switch name {
	case "dnft":
		return newDNFT(ctx, ns)
	case CLIName:
		return newCLI(ctx, ns)
	case "iptables-nft+C":
		return &iptablesBackend{ns: ns, variant: "nft", exec: true}, nil
	case "iptables-nft+C " + stagesSuffix:
		return &iptablesBackend{ns: ns, variant: "nft", exec: true, stages: true}, nil
	case "iptables-legacy+C " + stagesSuffix:
		return &iptablesBackend{ns: ns, variant: "legacy", exec: true, stages: true}, nil
	case "iptables-legacy+C":
		return &iptablesBackend{ns: ns, variant: "legacy", exec: true}, nil
	case "restore-nft":
		return &iptablesBackend{ns: ns, variant: "nft"}, nil
	case "restore-legacy":
		return &iptablesBackend{ns: ns, variant: "legacy"}, nil
	case "nft-rules":
		return &nftBackend{ns: ns}, nil
	}
	return nil, fmt.Errorf("bench: unknown backend %q", name)
}

// NetworkBackendNames are the backends of the network-creation workload:
// every backend, and the exec-per-rule paths with Docker's real STAGE-1/2
// isolation layout besides the contract's pairwise one.
var NetworkBackendNames = append(BackendNames[:len(BackendNames):len(BackendNames)],
	"iptables-nft+C "+stagesSuffix, "iptables-legacy+C "+stagesSuffix)

// prefillBatch is how many bindings a bulk publication carries.
const prefillBatch = 1000

// chunks calls fn with consecutive slices of at most n bindings.
func chunks(bs []portmap.Binding, n int, fn func([]portmap.Binding) error) error {
	for len(bs) > 0 {
		m := min(n, len(bs))
		if err := fn(bs[:m]); err != nil {
			return err
		}
		bs = bs[m:]
	}
	return nil
}
