package portmap

import (
	"context"
	"net/netip"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// source answers what checking and queuing a publication ask about the
// bindings already published: an [Index] from memory, the kernel with
// one-element gets (see [KernelBindings]). All bindings are normalised.
type source interface {
	// get returns the binding published on b's host address, proto and
	// host port (the key of a DNAT map element), whatever its container.
	get(ctx context.Context, b Binding) (Published, bool, error)
	// clash returns a published binding that claims b's host address and
	// port (see [clash]).
	clash(ctx context.Context, b Binding) (Published, bool, error)
	// refs returns how many bindings of network forward to b's container
	// address, proto and port.
	refs(ctx context.Context, network string, b Binding) (int, error)
	// hostRefs returns how many bindings of b's family on a specific host
	// address claim b's proto and host port.
	hostRefs(ctx context.Context, b Binding) (int, error)
	// members returns the k bindings of network that forward to b's
	// container address, proto and port, with their positions (see
	// [SetPositions]); with k 1, only b's positions are known.
	members(ctx context.Context, network string, b Binding, k int) ([]Published, error)
	// ofTarget returns the bindings of network that forward to c, proto
	// and port, oldest first.
	ofTarget(ctx context.Context, network string, c netip.Addr, proto Proto, port uint16) ([]Published, error)
	// freePort returns the lowest port of r free for b (see
	// [Index.freePort]).
	freePort(ctx context.Context, b Binding, r PortRange, req claims, reserved Reserved) (uint16, bool, error)
	// portHolder is [Index.PortHolder].
	portHolder(ctx context.Context, d chains.DaemonConfig, proto Proto, port uint16) (Published, bool, error)
}

func (x *Index) get(_ context.Context, b Binding) (Published, bool, error) {
	p, ok := x.sameHost(b)
	return p, ok, nil
}

func (x *Index) clash(_ context.Context, b Binding) (Published, bool, error) {
	p, ok := x.clashWith(b)
	return p, ok, nil
}

func (x *Index) refs(_ context.Context, network string, b Binding) (int, error) {
	return x.sharing(network, b), nil
}

func (x *Index) hostRefs(_ context.Context, b Binding) (int, error) {
	n := 0
	for _, p := range x.claims[claimOf(b)] {
		if !p.HostIP.IsUnspecified() {
			n++
		}
	}
	return n, nil
}

func (x *Index) members(_ context.Context, network string, b Binding, _ int) ([]Published, error) {
	return x.targets[targetOf(network, b)], nil
}

func (x *Index) ofTarget(_ context.Context, network string, c netip.Addr, proto Proto, port uint16) ([]Published, error) {
	return x.targetBindings(network, c, proto, port), nil
}

func (x *Index) freePort(_ context.Context, b Binding, r PortRange, req claims, reserved Reserved) (uint16, bool, error) {
	p, ok := x.lowestFree(b, r, req, reserved)
	return p, ok, nil
}

func (x *Index) portHolder(_ context.Context, _ chains.DaemonConfig, proto Proto, port uint16) (Published, bool, error) {
	p, ok := x.PortHolder(proto, port)
	return p, ok, nil
}

// Bindings checks and queues publications against the bindings already
// published, as an [Index] holds them in memory or as the kernel holds
// them (see [KernelBindings]): the same checks, the same batch.
type Bindings struct{ src source }

// Bindings returns the index's bindings as [Bindings].
func (x *Index) Bindings() Bindings { return Bindings{x} }

// CheckPublish is [Index.CheckPublish].
func (b Bindings) CheckPublish(ctx context.Context, d chains.DaemonConfig, n chains.Network, bs []Binding) ([]Binding, error) {
	return checkPublish(ctx, b.src, d, n, bs)
}

// CheckUnpublish is [Index.CheckUnpublish].
func (b Bindings) CheckUnpublish(ctx context.Context, d chains.DaemonConfig, n chains.Network, bs []Binding) ([]Binding, error) {
	return checkUnpublish(ctx, b.src, d, n, bs)
}

// Resolve is [Index.Resolve].
func (b Bindings) Resolve(ctx context.Context, d chains.DaemonConfig, n chains.Network, c netip.Addr, specs []Spec, reserved Reserved) ([]Binding, error) {
	return resolve(ctx, b.src, d, n, c, specs, reserved)
}

// ResolveUnpublish is [Index.ResolveUnpublish].
func (b Bindings) ResolveUnpublish(ctx context.Context, d chains.DaemonConfig, n chains.Network, c netip.Addr, specs []Spec) ([]Binding, error) {
	return resolveUnpublish(ctx, b.src, d, n, c, specs)
}

// Publish is [Index.Publish].
func (b Bindings) Publish(ctx context.Context, tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64) error {
	return queuePublish(ctx, b.src, tx, d, n, bs, seq)
}

// Unpublish is [Index.Unpublish].
func (b Bindings) Unpublish(ctx context.Context, tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding) error {
	return queueUnpublish(ctx, b.src, tx, d, n, bs)
}

// PortHolder is [Index.PortHolder] over d's families.
func (b Bindings) PortHolder(ctx context.Context, d chains.DaemonConfig, proto Proto, port uint16) (Published, bool, error) {
	return b.src.portHolder(ctx, d, proto, port)
}
