package chains

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// SortNetworks orders networks oldest first (stable).
func SortNetworks(nets []Network) {
	slices.SortStableFunc(nets, func(a, b Network) int { return cmp.Compare(a.Seq, b.Seq) })
}

// CheckNew validates a new network against the existing ones: its name,
// bridge and subnets must not be in use.
func CheckNew(n NetworkConfig, existing []Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if l := len(EncodeNetwork(Network{NetworkConfig: n, Seq: math.MaxInt64})); l > MaxRecordLen {
		return &FieldError{"name", n.Name, fmt.Sprintf("the network's record would take %d bytes, more than the %d of an element comment; use a shorter name", l, MaxRecordLen)}
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
