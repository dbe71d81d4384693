package dnft

import (
	"context"
	"fmt"
	"slices"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// CreateNetwork programs a bridge network in one batch. The configuration
// is validated first (also against existing networks); nothing is sent if
// it is bad. The bridge need not exist; an existing interface of that
// name must be a bridge (not lo, not an uplink), else a FieldError. A
// subnet that overlaps an address of another interface of the namespace
// is allowed, with a warning to the warn function ([Firewall.SetWarnFunc]).
func (fw *Firewall) CreateNetwork(ctx context.Context, n NetworkConfig) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err := n.Validate(); err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	bridge, err := fw.checkBridgeLink(ctx, n)
	if err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	overlaps, err := fw.subnetOverlaps(ctx, n, bridge)
	if err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	defer unlock()
	var (
		d, next DaemonConfig
		nw      chains.Network
	)
	err = fw.retry(func() error {
		var (
			nets []Network
			err  error
		)
		d, nets, err = fw.state(ctx)
		if err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
		if err := chains.CheckNew(n, nets); err != nil {
			return fmt.Errorf("create network: %w", err)
		}

		if n.Subnet6.IsValid() && !d.IPv6 {
			return fmt.Errorf("create network: %w", &FieldError{Field: "subnet", Value: n.Subnet6.String(), Reason: "IPv6 is not enabled (init --ipv6)"})
		}
		if !d.UserlandProxy {
			if err := fw.requireBridgeNetfilter(ctx); err != nil {
				return fmt.Errorf("create network %s: %w", n.Name, err)
			}
		}
		nw = chains.Network{NetworkConfig: n, Seq: fw.seq()}
		tx := &nft.Tx{}
		// iptables' raw table exists from now on (the view shows it).
		if next = chains.RawUse(d, n); next != d {
			chains.SetDaemon(tx, d, next)
		}
		chains.CreateNetwork(tx, d, nw)
		// Newest of all: SNAT networks created before yield to its
		// masquerade from the host (userland proxy off).
		chains.SyncYields(tx, d, chains.Order{Networks: nets}, chains.Order{Networks: append(slices.Clone(nets), nw)})
		if err := fw.commit(ctx, tx, func(v *view) { v.nets, v.d = append(v.nets, nw), next }); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, w := range overlaps {
		fw.warnf(w)
	}
	// The settings dnft keeps on the bridge, if it exists already (else
	// when it appears: see FollowLinks).
	if err := fw.networkLinks(ctx, d, nw); err != nil {
		return fmt.Errorf("create network %s: bridge settings: %w", n.Name, err)
	}
	return nil
}

// RemoveNetwork deletes exactly what CreateNetwork added, in one batch. A
// network that still has published ports is refused (a FieldError),
// unless force is set: then the same batch first unpublishes them, as
// [Firewall.Unpublish] would, and conntrack entries are cleaned up after.
func (fw *Firewall) RemoveNetwork(ctx context.Context, name string, force bool) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	defer unlock()
	var gone []Binding
	err = fw.retry(func() error {
		d, nets, err := fw.state(ctx)
		if err != nil {
			return err
		}
		n, ok := chains.Find(nets, name)
		if !ok {
			return &FieldError{Field: "network", Value: name, Reason: "no such network"}
		}
		x, err := fw.index(ctx)
		if err != nil {
			return err
		}
		mine := x.Network(name)
		if len(mine) > 0 && !force {
			return &FieldError{Field: "network", Value: name,
				Reason: fmt.Sprintf("still has %d published port(s) (first: %s); unpublish them first or force the removal", len(mine), mine[0].Binding)}
		}
		gone = make([]Binding, len(mine))
		for i, p := range mine {
			gone[i] = p.Binding
		}
		tx := &nft.Tx{}
		x.Unpublish(tx, d, n, gone)
		// An ingress gateway's masquerade may take the place of n's.
		gwCur, gwWant, err := networkGoneTwins(ctx, fw.conn, tx, d, n)
		if err != nil {
			return err
		}
		chains.SyncYields(tx, d, chains.Order{Networks: nets, Gateways: gwCur},
			chains.Order{Networks: slices.DeleteFunc(slices.Clone(nets), func(o Network) bool { return o.Name == name }), Gateways: gwWant})
		chains.RemoveNetwork(tx, d, n)
		return fw.commit(ctx, tx, func(v *view) {
			v.idx.Remove(name, gone)
			v.nets = slices.DeleteFunc(v.nets, func(o Network) bool { return o.Name == name })
		})
	})
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	fw.clearConntrack(ctx, gone)
	return nil
}
