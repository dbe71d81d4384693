package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Binding is one published port (see [portmap.Binding]).
type Binding = portmap.Binding

// Published is a published port as read back from the kernel.
type Published = portmap.Published

// Publish publishes ports of containers on a network, in one batch for
// both families: DNAT from the host address and port, the filter accept,
// the hairpin masquerade and, for a loopback host address in protected
// mode, the drop of packets from outside (CONTRACT.md §2, port publish).
// Every binding is validated first — also against the ports already
// published on every network — and nothing is sent if one is bad.
//
// A zero HostIP means the network's default binding address for IPv4
// (com.docker.network.bridge.host_binding_ipv4) or else all addresses;
// 0.0.0.0 and :: mean all addresses.
//
// It reads every published binding to check for conflicts, so its cost
// grows with the number of published ports.
func (fw *Firewall) Publish(ctx context.Context, network string, bs []Binding) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, n, existing, err := fw.portState(ctx, network)
	if err != nil {
		return fmt.Errorf("publish on %s: %w", network, err)
	}
	norm, err := portmap.CheckPublish(d, n, bs, existing)
	if err != nil {
		return fmt.Errorf("publish on %s: %w", network, err)
	}
	if err := ingress.CheckBindings(ctx, fw.conn, d, norm); err != nil {
		return fmt.Errorf("publish on %s: %w", network, err)
	}
	if len(norm) == 0 {
		return nil
	}
	seq := fw.seq()
	// Binding i is recorded with seq+i: keep later operations after them.
	fw.lastSeq = max(fw.lastSeq, seq+int64(len(norm))-1)
	tx := &nft.Tx{}
	portmap.Publish(tx, d, n, norm, seq, existing)
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("publish on %s: %w", network, err)
	}
	if !d.UserlandProxy {
		// DNAT of 127.0.0.1 to a container needs route_localnet on the
		// bridge; the bridge may have appeared after the network.
		return fw.routeLocalnet(n.Bridge)
	}
	return nil
}

// Unpublish removes published ports of a network, in one batch: exactly
// the elements Publish added for them (elements that another binding
// still needs stay). Each binding must be published on the network as
// given (a zero HostIP is resolved as in Publish); nothing is sent if one
// is not.
func (fw *Firewall) Unpublish(ctx context.Context, network string, bs []Binding) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, n, existing, err := fw.portState(ctx, network)
	if err != nil {
		return fmt.Errorf("unpublish on %s: %w", network, err)
	}
	norm, err := portmap.CheckUnpublish(d, n, bs, existing)
	if err != nil {
		return fmt.Errorf("unpublish on %s: %w", network, err)
	}
	tx := &nft.Tx{}
	portmap.Unpublish(tx, d, n, norm, existing)
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("unpublish on %s: %w", network, err)
	}
	return nil
}

// Ports lists the published ports of every network, oldest first, as read
// back from the kernel.
func (fw *Firewall) Ports(ctx context.Context) ([]Published, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, _, err := fw.state(ctx)
	if err != nil {
		return nil, err
	}
	return portmap.ReadBindings(ctx, fw.conn, d)
}

// portState reads the daemon configuration, the named network and every
// published binding (O(bindings): both DNAT maps are read in full).
func (fw *Firewall) portState(ctx context.Context, network string) (chains.DaemonConfig, chains.Network, []Published, error) {
	d, nets, err := fw.state(ctx)
	if err != nil {
		return d, chains.Network{}, nil, err
	}
	n, ok := chains.Find(nets, network)
	if !ok {
		return d, n, nil, &FieldError{Field: "network", Value: network, Reason: "no such network"}
	}
	existing, err := portmap.ReadBindings(ctx, fw.conn, d)
	return d, n, existing, err
}
