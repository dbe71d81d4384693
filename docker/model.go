package docker

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/dnft/dnft"
)

// Docker's bridge driver options, as network inspect shows them.
const (
	optBridgeName  = "com.docker.network.bridge.name"
	optDefault     = "com.docker.network.bridge.default_bridge"
	optICC         = "com.docker.network.bridge.enable_icc"
	optMasquerade  = "com.docker.network.bridge.enable_ip_masquerade"
	optHostBinding = "com.docker.network.bridge.host_binding_ipv4"
	optHostIPv4    = "com.docker.network.host_ipv4"
	optHostIPv6    = "com.docker.network.host_ipv6"
)

// bridgeNet is a Docker bridge network as dnft programs it.
type bridgeNet struct {
	id      string
	config  dnft.NetworkConfig
	dflt    bool // the default "bridge" network (docker0)
	created int64
}

// BridgeName returns the interface name of a Docker bridge network:
// com.docker.network.bridge.name when set (docker0 for the default
// network), else "br-" and the first 12 characters of the network's ID.
func BridgeName(n network.Inspect) string {
	if b := n.Options[optBridgeName]; b != "" {
		return b
	}
	id := n.ID
	if len(id) > 12 {
		id = id[:12]
	}
	return "br-" + id
}

// networkConfig turns a Docker bridge network into dnft's configuration.
// Masquerade of the default network follows dockerd's --ip-masq
// (opt.IPMasq), since a daemon started with --iptables=false reports it
// off whatever the flag; a user-defined network masquerades unless its
// enable_ip_masquerade option says otherwise, as in dockerd.
func networkConfig(n network.Inspect, opt Options) (bridgeNet, error) {
	bad := func(what, v string) error {
		return fmt.Errorf("network %s (%.12s): %s %q", n.Name, n.ID, what, v)
	}
	flag := func(key string, def bool) (bool, error) {
		v, ok := n.Options[key]
		if !ok || v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, bad(key, v)
		}
		return b, nil
	}
	addr := func(key string) (netip.Addr, error) {
		v := n.Options[key]
		if v == "" {
			return netip.Addr{}, nil
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Addr{}, bad(key, v)
		}
		return a.Unmap(), nil
	}
	out := bridgeNet{id: n.ID, created: n.Created.UnixNano()}
	out.dflt, _ = strconv.ParseBool(n.Options[optDefault])
	c := dnft.NetworkConfig{Name: n.Name, Bridge: BridgeName(n), Internal: n.Internal}
	var err error
	if c.ICC, err = flag(optICC, true); err != nil {
		return out, err
	}
	if out.dflt {
		c.Masquerade = opt.IPMasq
	} else if c.Masquerade, err = flag(optMasquerade, true); err != nil {
		return out, err
	}
	if c.HostBindingIPv4, err = addr(optHostBinding); err != nil {
		return out, err
	}
	if c.HostBindingIPv4 == netip.IPv4Unspecified() {
		c.HostBindingIPv4 = netip.Addr{} // dnft's default
	}
	if c.HostIPv4, err = addr(optHostIPv4); err != nil {
		return out, err
	}
	if c.HostIPv6, err = addr(optHostIPv6); err != nil {
		return out, err
	}
	for _, cfg := range n.IPAM.Config {
		p, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil {
			return out, bad("subnet", cfg.Subnet)
		}
		p = p.Masked()
		switch {
		case p.Addr().Is4() && !c.Subnet4.IsValid():
			c.Subnet4 = p
		case p.Addr().Is6() && !c.Subnet6.IsValid() && n.EnableIPv6 && opt.IPv6:
			c.Subnet6 = p
		}
	}
	if !c.Subnet4.IsValid() {
		return out, fmt.Errorf("network %s (%.12s) has no IPv4 subnet", n.Name, n.ID)
	}
	if err := c.Validate(); err != nil {
		return out, fmt.Errorf("network %s (%.12s): %w", n.Name, n.ID, err)
	}
	out.config = c
	return out, nil
}

// endpoint is one of a container's network endpoints.
type endpoint struct {
	network string
	es      *network.EndpointSettings
}

// gatewayEndpoint returns the endpoint that gives a container its default
// gateway, which is where dockerd programs its published ports: among the
// endpoints with a gateway (internal networks have none), the first one
// by libnetwork's order — dual-stack gateways first, then the higher
// gateway priority, then the network name.
func gatewayEndpoint(c container.InspectResponse) (endpoint, bool) {
	if c.NetworkSettings == nil {
		return endpoint{}, false
	}
	var eps []endpoint
	for name, es := range c.NetworkSettings.Networks {
		if es != nil && es.Gateway != "" {
			eps = append(eps, endpoint{name, es})
		}
	}
	if len(eps) == 0 {
		return endpoint{}, false
	}
	dual := func(e endpoint) int {
		if e.es.Gateway != "" && e.es.IPv6Gateway != "" {
			return 1
		}
		return 0
	}
	slices.SortFunc(eps, func(a, b endpoint) int {
		return cmp.Or(dual(b)-dual(a), b.es.GwPriority-a.es.GwPriority, strings.Compare(a.network, b.network))
	})
	return eps[0], true
}

// published is what one running container publishes through dnft.
type published struct {
	network  string // dnft's network name
	bindings []dnft.Binding
	skipped  []string // bindings dnft leaves to docker-proxy, with the reason
}

// containerBindings returns the ports a running container publishes, as
// dockerd bound them (NetworkSettings.Ports), on the network of its
// gateway endpoint. An IPv6 host address is forwarded only when IPv6 is
// on and the container has an IPv6 address there; otherwise docker-proxy
// alone serves it, as with dockerd's own rules.
func containerBindings(c container.InspectResponse, nets map[string]bridgeNet, opt Options) (published, bool) {
	ep, ok := gatewayEndpoint(c)
	if !ok {
		return published{}, false
	}
	n, ok := nets[ep.es.NetworkID]
	if !ok || n.config.Internal {
		return published{}, false
	}
	out := published{network: n.config.Name}
	ip4, _ := netip.ParseAddr(ep.es.IPAddress)
	ip6, _ := netip.ParseAddr(ep.es.GlobalIPv6Address)
	ports := c.NetworkSettings.Ports
	for _, pk := range dockerdOrder(ports) {
		k := string(pk)
		portStr, proto, _ := strings.Cut(k, "/")
		if proto == "" {
			proto = "tcp"
		}
		cport, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || cport == 0 {
			out.skipped = append(out.skipped, k+": bad container port")
			continue
		}
		for _, pb := range ports[pk] {
			hp, err := strconv.ParseUint(pb.HostPort, 10, 16)
			if err != nil || hp == 0 {
				out.skipped = append(out.skipped, fmt.Sprintf("%s %s:%s: bad host port", k, pb.HostIP, pb.HostPort))
				continue
			}
			host := netip.IPv4Unspecified()
			if pb.HostIP != "" {
				if host, err = netip.ParseAddr(pb.HostIP); err != nil {
					out.skipped = append(out.skipped, fmt.Sprintf("%s %s:%s: bad host address", k, pb.HostIP, pb.HostPort))
					continue
				}
				host = host.Unmap()
			}
			b := dnft.Binding{Proto: dnft.Proto(proto), HostIP: host, HostPort: uint16(hp), ContainerPort: uint16(cport)}
			switch {
			case host.Is4() && ip4.IsValid():
				b.ContainerIP = ip4
			case host.Is6() && opt.IPv6 && ip6.IsValid() && n.config.Subnet6.IsValid():
				b.ContainerIP = ip6
			case host.Is6() && !opt.IPv6:
				continue // dockerd without ip6tables leaves it to docker-proxy too
			default:
				out.skipped = append(out.skipped, fmt.Sprintf("%s on %s: no container address of its family (docker-proxy serves it)", k, netip.AddrPortFrom(host, uint16(hp))))
				continue
			}
			out.bindings = append(out.bindings, b)
		}
	}
	return out, true
}

// dockerdOrder returns the container ports in the order dockerd 20.10
// programs their rules, so that the iptables view lists them as dockerd
// does. The daemon sorts the endpoint's port bindings with go-connections'
// nat.SortPortMap (the larger host port first) and programs each port's
// bindings together, the port of the largest host port first; the
// bindings of one port are already in that order in the inspect response.
func dockerdOrder(ports nat.PortMap) []nat.Port {
	maxHP := func(p nat.Port) int {
		m := 0
		for _, b := range ports[p] {
			if n, err := strconv.Atoi(b.HostPort); err == nil && n > m {
				m = n
			}
		}
		return m
	}
	keys := slices.Sorted(maps.Keys(ports))
	slices.SortStableFunc(keys, func(a, b nat.Port) int {
		tcp := func(p nat.Port) int {
			if strings.EqualFold(p.Proto(), "tcp") {
				return 0
			}
			return 1
		}
		return cmp.Or(cmp.Compare(maxHP(b), maxHP(a)), cmp.Compare(b.Int(), a.Int()), cmp.Compare(tcp(a), tcp(b)))
	})
	return keys
}
