package dnft

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dnft/dnft/nft"
)

// The checks of a new network against the namespace's interfaces (the
// kernel side; chains.NetworkConfig.Validate checks the values alone).

// checkBridgeLink refuses, as a network's bridge, the loopback interface
// and an existing interface that is not a bridge (an uplink, a veth): its
// traffic would be isolated from every container, masqueraded and
// dropped as if it were a network's. A bridge that does not exist yet is
// fine: the runtime may create it later.
func (fw *Firewall) checkBridgeLink(ctx context.Context, n NetworkConfig) error {
	if n.Bridge == "lo" {
		return &FieldError{Field: "bridge", Value: n.Bridge, Reason: "is the loopback interface, not a bridge"}
	}
	l, ok, err := fw.conn.LinkByName(ctx, n.Bridge)
	switch {
	case err != nil:
		return err
	case !ok:
		return nil
	case l.Loopback:
		return &FieldError{Field: "bridge", Value: n.Bridge, Reason: "is the loopback interface, not a bridge"}
	case l.Kind != "bridge":
		kind := l.Kind
		if kind == "" {
			kind = "device"
		}
		return &FieldError{Field: "bridge", Value: n.Bridge,
			Reason: fmt.Sprintf("is an existing %s interface, not a bridge (its traffic would be isolated and masqueraded as a network's)", kind)}
	}
	return nil
}

// subnetOverlaps returns a warning for each address of another interface
// of the namespace (not the network's bridge, not loopback) that overlaps
// one of the network's subnets: such a network takes over addresses the
// host already routes elsewhere (for example the uplink's own subnet,
// whose replies its direct-access drop would eat).
func (fw *Firewall) subnetOverlaps(ctx context.Context, n NetworkConfig) ([]error, error) {
	links, err := fw.conn.Links(ctx)
	if err != nil {
		return nil, err
	}
	names := map[int]nft.Link{}
	for _, l := range links {
		names[l.Index] = l
	}
	addrs, err := fw.conn.Addrs(ctx)
	if err != nil {
		return nil, err
	}
	var out []error
	for _, a := range addrs {
		l := names[a.Index]
		if l.Name == n.Bridge || l.Loopback || a.Prefix.Addr().IsLinkLocalUnicast() {
			continue
		}
		for _, s := range []netip.Prefix{n.Subnet4, n.Subnet6} {
			if s.IsValid() && s.Overlaps(a.Prefix.Masked()) {
				out = append(out, fmt.Errorf("network %s: subnet %s overlaps %s on interface %s", n.Name, s, a.Prefix, l.Name))
			}
		}
	}
	return out, nil
}
