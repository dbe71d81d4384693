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
// it is bad.
func (fw *Firewall) CreateNetwork(ctx context.Context, n NetworkConfig) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err := n.Validate(); err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	defer unlock()
	var d DaemonConfig
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
		nw := chains.Network{NetworkConfig: n, Seq: fw.seq()}
		tx := &nft.Tx{}
		chains.CreateNetwork(tx, d, nw)
		if err := fw.commit(ctx, tx, func(v *view) { v.nets = append(v.nets, nw) }); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fw.networkSysctls(d, n)
}

// networkSysctls applies the kernel settings Docker applies for a network:
// bridged traffic must traverse the ip/ip6 hooks for ICC=false and for
// hairpin DNAT, and 127.0.0.1 DNAT needs route_localnet on the bridge.
func (fw *Firewall) networkSysctls(d DaemonConfig, n NetworkConfig) error {
	if !n.ICC || !d.UserlandProxy {
		for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
			if v, ok, err := fw.conn.Sysctl(k); err != nil {
				return err
			} else if ok && v != "1" {
				if err := fw.conn.SetSysctl(k, "1"); err != nil {
					return err
				}
			}
		}
	}
	if !d.UserlandProxy {
		return fw.routeLocalnet(n.Bridge)
	}
	return nil
}

// routeLocalnet sets route_localnet=1 on a bridge if it exists.
func (fw *Firewall) routeLocalnet(bridge string) error {
	key := "net/ipv4/conf/" + bridge + "/route_localnet"
	if _, ok, err := fw.conn.Sysctl(key); err != nil || !ok {
		return err
	}
	return fw.conn.SetSysctl(key, "1")
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
