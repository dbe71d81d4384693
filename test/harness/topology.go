package harness

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// NamePrefix starts the name of every namespace the harness creates:
// "dnft-" + 6 random hex digits + "-" + role ("host", "lan", "inet" or
// "c-" + container name), for example "dnft-3fa9c1-c-web".
const NamePrefix = "dnft-"

// buildTimeout bounds the creation of one topology.
const buildTimeout = 30 * time.Second

// Spec describes a topology.
type Spec struct {
	// Bridges are created inside the Host namespace, like Docker's
	// docker0 or br-<id>.
	Bridges []BridgeSpec
	// Containers get one namespace each, attached by veth to a bridge.
	Containers []ContainerSpec
	// IPv6 also configures IPv6 addresses (without duplicate address
	// detection) everywhere: on the Host–LAN and Host–Internet links, on
	// bridges with a Gateway6, and in containers with an Addr6. Without it
	// Gateway6 and Addr6 are ignored.
	IPv6 bool
	// NoForward leaves IPv4 and IPv6 forwarding off in Host
	// (net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0). By default
	// both are 1, as dockerd sets them.
	NoForward bool
}

// BridgeSpec describes one bridge in the Host namespace.
type BridgeSpec struct {
	// Name is the bridge's interface name (at most 15 bytes).
	Name string
	// Gateway4 is the bridge's IPv4 address and the containers' subnet,
	// for example 172.18.0.1/16. Optional, but a container can only have
	// an Addr4 on a bridge that has one.
	Gateway4 netip.Prefix
	// Gateway6 is the bridge's IPv6 address and subnet, for example
	// fd00:18::1/64. Optional.
	Gateway6 netip.Prefix
}

// ContainerSpec describes one container namespace.
type ContainerSpec struct {
	// Name identifies the container in [Topology.Containers] and in its
	// namespace name; letters, digits, '_', '.' and '-' only.
	Name string
	// Bridge is the name of the [BridgeSpec] the container is attached to.
	Bridge string
	// Addr4 is the container's IPv4 address inside the bridge's Gateway4
	// subnet. Optional.
	Addr4 netip.Addr
	// Addr6 is the container's IPv6 address inside the bridge's Gateway6
	// subnet. Optional; used only with [Spec.IPv6].
	Addr6 netip.Addr
	// TCPPorts and UDPPorts are echo servers ([NS.ServeTCP],
	// [NS.ServeUDP]) started in the container.
	TCPPorts, UDPPorts []uint16
}

// Topology is a built set of namespaces; see the package documentation for
// its shape.
type Topology struct {
	// Prefix starts the name of each of the topology's namespaces, for
	// example "dnft-3fa9c1-".
	Prefix string
	// Spec is the spec the topology was built from.
	Spec Spec
	// Host is the Docker host: it holds the bridges, the host ends of all
	// veths, and is where the firewall under test is programmed.
	Host *NS
	// LAN is a neighbour of Host on [LANPrefix4], without a default route.
	LAN *NS
	// Internet is a server beyond Host's uplink on [WANPrefix4], with no
	// route to any container subnet.
	Internet *NS
	// Containers maps [ContainerSpec.Name] to the container's namespace.
	Containers map[string]*NS

	created []*NS // namespaces that exist, in creation order
}

// New builds the topology described by spec and registers its removal with
// t.Cleanup; it calls t.Fatal if the spec is invalid or anything fails.
// Whatever was created before a failure is removed as well. Call
// [RequireRoot] first.
func New(t testing.TB, spec Spec) *Topology {
	t.Helper()
	tp, err := newTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.destroy(); err != nil {
			t.Errorf("harness: cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if err := tp.build(ctx); err != nil {
		t.Fatalf("harness: build topology %s: %v", tp.Prefix, err)
	}
	return tp
}

// NewTwin builds two topologies from the same spec, with the same
// addresses and interface names but in different namespaces, for
// differential tests: program one with dnft and the other with real
// iptables, then compare [RunMatrix] results with [DiffMatrix].
func NewTwin(t testing.TB, spec Spec) (a, b *Topology) {
	t.Helper()
	return New(t, spec), New(t, spec)
}

// VethName returns the name of the host-side veth of the named container
// (the port on its bridge): "v" followed by 8 hex digits of a hash of the
// name, stable across runs and twins.
func VethName(container string) string {
	h := fnv.New32a()
	h.Write([]byte(container))
	return fmt.Sprintf("v%08x", h.Sum32())
}

// Namespaces returns all of the topology's namespaces: Host, LAN,
// Internet, then the containers sorted by name.
func (tp *Topology) Namespaces() []*NS {
	all := []*NS{tp.Host, tp.LAN, tp.Internet}
	names := make([]string, 0, len(tp.Containers))
	for name := range tp.Containers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		all = append(all, tp.Containers[name])
	}
	return all
}

var containerName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// newTopology validates spec and names the namespaces; it creates nothing.
func newTopology(spec Spec) (*Topology, error) {
	if err := validate(spec); err != nil {
		return nil, fmt.Errorf("harness: invalid spec: %w", err)
	}
	prefix, err := randomPrefix()
	if err != nil {
		return nil, err
	}
	tp := &Topology{
		Prefix:     prefix,
		Spec:       spec,
		Host:       &NS{Name: prefix + "host"},
		LAN:        &NS{Name: prefix + "lan", Addr4: LANAddr4},
		Internet:   &NS{Name: prefix + "inet", Addr4: InternetAddr4},
		Containers: map[string]*NS{},
	}
	if spec.IPv6 {
		tp.LAN.Addr6, tp.Internet.Addr6 = LANAddr6, InternetAddr6
	}
	for _, c := range spec.Containers {
		ns := &NS{Name: prefix + "c-" + c.Name, Addr4: c.Addr4}
		if spec.IPv6 {
			ns.Addr6 = c.Addr6
		}
		tp.Containers[c.Name] = ns
	}
	return tp, nil
}

func validate(spec Spec) error {
	reserved := []netip.Prefix{LANPrefix4, LANPrefix6, WANPrefix4, WANPrefix6, loopback4}
	bridges := map[string]BridgeSpec{}
	ifnames := map[string]bool{"lo": true, HostLANIf: true, HostWANIf: true}
	for _, b := range spec.Bridges {
		if b.Name == "" || len(b.Name) > 15 || strings.ContainsAny(b.Name, "/ \t\n:") {
			return fmt.Errorf("bridge name %q: need 1-15 bytes without '/', ':' or spaces", b.Name)
		}
		if ifnames[b.Name] {
			return fmt.Errorf("bridge name %q is taken", b.Name)
		}
		ifnames[b.Name] = true
		for _, gw := range []struct {
			p    netip.Prefix
			want bool // want IPv4
		}{{b.Gateway4, true}, {b.Gateway6, false}} {
			if !gw.p.IsValid() {
				continue
			}
			if gw.p.Addr().Is4() != gw.want || gw.p.Addr().Is4In6() {
				return fmt.Errorf("bridge %s: gateway %s has the wrong address family", b.Name, gw.p)
			}
			for _, r := range reserved {
				if gw.p.Overlaps(r) {
					return fmt.Errorf("bridge %s: %s overlaps the harness's %s", b.Name, gw.p, r)
				}
			}
			reserved = append(reserved, gw.p.Masked())
		}
		bridges[b.Name] = b
	}
	if len(spec.Containers) > 0 && len(spec.Bridges) == 0 {
		return errors.New("containers need a bridge")
	}
	addrs := map[netip.Addr]string{}
	for _, c := range spec.Containers {
		if !containerName.MatchString(c.Name) {
			return fmt.Errorf("container name %q: need 1-64 of [A-Za-z0-9_.-]", c.Name)
		}
		veth := VethName(c.Name)
		if ifnames[veth] {
			return fmt.Errorf("container %s: duplicate name or veth name %s", c.Name, veth)
		}
		ifnames[veth] = true
		b, ok := bridges[c.Bridge]
		if !ok {
			return fmt.Errorf("container %s: no bridge %q", c.Name, c.Bridge)
		}
		check := []struct {
			a  netip.Addr
			gw netip.Prefix
		}{{c.Addr4, b.Gateway4}}
		if spec.IPv6 {
			check = append(check, struct {
				a  netip.Addr
				gw netip.Prefix
			}{c.Addr6, b.Gateway6})
		}
		for _, e := range check {
			if !e.a.IsValid() {
				continue
			}
			if !e.gw.IsValid() || !e.gw.Contains(e.a) || e.a == e.gw.Addr() {
				return fmt.Errorf("container %s: address %s is not a host address of bridge %s's subnet %s", c.Name, e.a, b.Name, e.gw)
			}
			if other, dup := addrs[e.a]; dup {
				return fmt.Errorf("container %s: address %s is also %s's", c.Name, e.a, other)
			}
			addrs[e.a] = c.Name
		}
	}
	return nil
}
