package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
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
	d, nets, err := fw.state(ctx)
	if err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	if err := chains.CheckNew(n, nets); err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	if n.Subnet6.IsValid() && !d.IPv6 {
		return fmt.Errorf("create network: %w", &FieldError{Field: "subnet", Value: n.Subnet6.String(), Reason: "IPv6 is not enabled (init --ipv6)"})
	}
	tx := &nft.Tx{}
	chains.CreateNetwork(tx, d, chains.Network{NetworkConfig: n, Seq: fw.seq()})
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
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

// RemoveNetwork deletes exactly what CreateNetwork added, in one batch.
func (fw *Firewall) RemoveNetwork(ctx context.Context, name string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, nets, err := fw.state(ctx)
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	n, ok := chains.Find(nets, name)
	if !ok {
		return fmt.Errorf("remove network: %w", &FieldError{Field: "network", Value: name, Reason: "no such network"})
	}
	ports, err := portmap.ReadBindings(ctx, fw.conn, d)
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	if mine := portmap.OfNetwork(ports, name); len(mine) > 0 {
		return fmt.Errorf("remove network: %w", &FieldError{Field: "network", Value: name,
			Reason: fmt.Sprintf("still has %d published port(s) (first: %s); unpublish them first", len(mine), mine[0].Binding)})
	}
	tx := &nft.Tx{}
	chains.RemoveNetwork(tx, d, n)
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}
