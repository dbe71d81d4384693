package chains

import (
	"fmt"

	"github.com/dnft/dnft/nft"
)

// ReadState reads the daemon configuration and the networks from the
// kernel. initialized is false when dnft has not been initialized in the
// namespace.
func ReadState(s nft.SetState, ok bool) (d DaemonConfig, nets []Network, initialized bool, err error) {
	if !ok {
		return d, nil, false, nil
	}
	found := false
	for _, e := range s.Elements {
		v, err := nft.DecodeKey(nft.IPv4, []nft.Field{nft.FieldIIFName}, e.Key)
		if err != nil {
			return d, nil, true, err
		}
		if v[0].Name == daemonKey {
			d, err = DecodeDaemon(e.Comment)
			if err != nil {
				return d, nil, true, err
			}
			found = true
			continue
		}
		n, err := DecodeNetwork(v[0].Name, e.Comment)
		if err != nil {
			return d, nil, true, err
		}
		nets = append(nets, n)
	}
	if !found {
		return d, nil, true, fmt.Errorf("set %s has no daemon record: dnft's table was changed by someone else (reset and init again)", SetNetworks)
	}
	SortNetworks(nets)
	return d, nets, true, nil
}

// SortNetworks orders networks oldest first.
func SortNetworks(nets []Network) {
	for i := 1; i < len(nets); i++ {
		for j := i; j > 0 && nets[j].Seq < nets[j-1].Seq; j-- {
			nets[j], nets[j-1] = nets[j-1], nets[j]
		}
	}
}

// CheckNew validates a new network against the existing ones: its name,
// bridge and subnets must not be in use.
func CheckNew(n NetworkConfig, existing []Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if len(EncodeNetwork(Network{NetworkConfig: n, Seq: 1 << 62})) > 250 {
		return &FieldError{"name", n.Name, "network record too long for the kernel's 256-byte comment; use a shorter name"}
	}
	for _, o := range existing {
		switch {
		case o.Name == n.Name:
			return &FieldError{"name", n.Name, "a network with this name exists"}
		case o.Bridge == n.Bridge:
			return &FieldError{"bridge", n.Bridge, fmt.Sprintf("already used by network %q", o.Name)}
		case o.Subnet4.Overlaps(n.Subnet4):
			return &FieldError{"subnet", n.Subnet4.String(), fmt.Sprintf("overlaps %s of network %q", o.Subnet4, o.Name)}
		case n.Subnet6.IsValid() && o.Subnet6.IsValid() && o.Subnet6.Overlaps(n.Subnet6):
			return &FieldError{"subnet", n.Subnet6.String(), fmt.Sprintf("overlaps %s of network %q", o.Subnet6, o.Name)}
		}
	}
	return nil
}

// Find returns the network with the given name.
func Find(nets []Network, name string) (Network, bool) {
	for _, n := range nets {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}
