package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/nft"
)

// The checks of a new network against the namespace's interfaces (the
// kernel side; chains.NetworkConfig.Validate checks the values alone).

// checkBridgeLink refuses, as a network's bridge, the loopback interface
// and an existing interface that is not a bridge (an uplink, a veth): its
// traffic would be isolated from every container, masqueraded and
// dropped as if it were a network's. A bridge that does not exist yet is
// fine: the runtime may create it later. It returns the bridge's index,
// 0 if it does not exist.
func (fw *Firewall) checkBridgeLink(ctx context.Context, n NetworkConfig) (int, error) {
	if n.Bridge == "lo" {
		return 0, &FieldError{Field: "bridge", Value: n.Bridge, Reason: "is the loopback interface, not a bridge"}
	}
	l, ok, err := fw.conn.LinkByName(ctx, n.Bridge)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, nil
	case l.Loopback:
		return 0, &FieldError{Field: "bridge", Value: n.Bridge, Reason: "is the loopback interface, not a bridge"}
	case l.Kind != "bridge":
		kind := l.Kind
		if kind == "" {
			kind = "device"
		}
		return 0, &FieldError{Field: "bridge", Value: n.Bridge,
			Reason: fmt.Sprintf("is an existing %s interface, not a bridge (its traffic would be isolated and masqueraded as a network's)", kind)}
	}
	return l.Index, nil
}

// subnetOverlaps returns a warning for each address of another interface
// of the namespace (not the network's bridge, whose index is bridge; not
// loopback or link-local) that overlaps one of the network's subnets:
// such a network takes over addresses the host already routes elsewhere
// (for example the uplink's own subnet, whose replies its direct-access
// drop would eat). It reads the addresses, and the links only when one
// overlaps.
func (fw *Firewall) subnetOverlaps(ctx context.Context, n NetworkConfig, bridge int) ([]error, error) {
	addrs, err := fw.conn.Addrs(ctx)
	if err != nil {
		return nil, err
	}
	var hits []nft.IfAddr
	for _, a := range addrs {
		p := a.Prefix
		if a.Index == bridge || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if n.Subnet4.Overlaps(p.Masked()) || n.Subnet6.IsValid() && n.Subnet6.Overlaps(p.Masked()) {
			hits = append(hits, a)
		}
	}
	if len(hits) == 0 {
		return nil, nil
	}
	links, err := fw.conn.Links(ctx)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Index] = l.Name
	}
	out := make([]error, len(hits))
	for i, a := range hits {
		s := n.Subnet4
		if !s.Overlaps(a.Prefix.Masked()) {
			s = n.Subnet6
		}
		out[i] = fmt.Errorf("network %s: subnet %s overlaps %s on interface %s", n.Name, s, a.Prefix, names[a.Index])
	}
	return out, nil
}
