package bench

import (
	"context"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// dnftBackend programs through the dnft library, one Firewall (one
// long-lived netlink socket) per namespace, as a runtime would hold it.
type dnftBackend struct {
	fw *dnft.Firewall
}

func newDNFT(ctx context.Context, ns *harness.NS) (*dnftBackend, error) {
	fw, err := dnft.Open(ctx, ns.Path())
	if err != nil {
		return nil, err
	}
	return &dnftBackend{fw: fw}, nil
}

// daemonConfig is the daemon configuration of every run (Docker's defaults).
var daemonConfig = dnft.DaemonConfig{UserlandProxy: true}

// networkConfig returns network k (see [NetworkRules]) for dnft.
func networkConfig(k int) dnft.NetworkConfig {
	return dnft.NetworkConfig{Name: networkName(k), Bridge: bridgeName(k), Subnet4: subnet(k), ICC: true, Masquerade: true}
}

func (d *dnftBackend) Name() string { return "dnft" }

func (d *dnftBackend) Init(ctx context.Context) error { return d.fw.Init(ctx, daemonConfig) }

func (d *dnftBackend) CreateNetwork(ctx context.Context, k int) error {
	return d.fw.CreateNetwork(ctx, networkConfig(k))
}

func (d *dnftBackend) Publish(ctx context.Context, bs []portmap.Binding) error {
	return d.fw.Publish(ctx, networkName(0), bs)
}

func (d *dnftBackend) Unpublish(ctx context.Context, bs []portmap.Binding) error {
	return d.fw.Unpublish(ctx, networkName(0), bs)
}

func (d *dnftBackend) PrefillNetworks(ctx context.Context, from, to int) error {
	for k := from; k < to; k++ {
		if err := d.CreateNetwork(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func (d *dnftBackend) PrefillBindings(ctx context.Context, bs []portmap.Binding) error {
	return chunks(bs, prefillBatch, func(c []portmap.Binding) error { return d.Publish(ctx, c) })
}

func (d *dnftBackend) Close() error { return d.fw.Close() }
