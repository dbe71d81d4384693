package compat

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/portmap"
)

// TestBindingRules: the rules bindingRules builds directly are those
// that CONTRACT.md §2's command text for the binding parses into.
func TestBindingRules(t *testing.T) {
	a := netip.MustParseAddr
	for _, d := range []chains.DaemonConfig{{UserlandProxy: true}, {}, {UserlandProxy: true, AllowDirectRouting: true}} {
		for _, b := range []portmap.Published{
			{Network: "n", Binding: portmap.Binding{Proto: portmap.TCP, HostPort: 8080, ContainerIP: a("172.18.0.5"), ContainerPort: 80}},
			{Network: "n", Binding: portmap.Binding{Proto: portmap.UDP, HostIP: a("192.0.2.1"), HostPort: 53, ContainerIP: a("172.18.0.5"), ContainerPort: 5353}},
			{Network: "n", Binding: portmap.Binding{Proto: portmap.SCTP, HostIP: a("127.0.0.1"), HostPort: 9000, ContainerIP: a("172.18.0.6"), ContainerPort: 9000}},
			{Network: "n", Binding: portmap.Binding{Proto: portmap.TCP, HostIP: a("::"), HostPort: 8080, ContainerIP: a("fd00::5"), ContainerPort: 80}},
			{Network: "n", Binding: portmap.Binding{Proto: portmap.TCP, HostIP: a("::1"), HostPort: 8081, ContainerIP: a("fd00::5"), ContainerPort: 80}},
		} {
			f := familyOf(b.ContainerIP)
			got := bindingRules(d, "br0", b, nil)
			want := bindingSpecs(d, "br0", b)
			if len(got) != len(want) {
				t.Fatalf("%+v %v: %d rules, want %d", d, b.Binding, len(got), len(want))
			}
			for i, r := range got {
				w := MustParseRule(f, want[i])
				if r.rule.Spec(f, false, nil) != w.Spec(f, false, nil) {
					t.Errorf("%+v %v rule %d:\n got %s\nwant %s", d, b.Binding, i, r.rule.Spec(f, false, nil), w.Spec(f, false, nil))
				}
			}
			filterOnly := bindingRules(d, "br0", b, map[string]bool{TableNAT: true, TableRaw: true})
			if len(filterOnly) != 1 || filterOnly[0].rule.Spec(f, false, nil) != got[1].rule.Spec(f, false, nil) {
				t.Errorf("%+v %v: the filter-only rules differ", d, b.Binding)
			}
		}
	}
}

// bindingSpecs is CONTRACT.md §2's command text of a binding's rules.
func bindingSpecs(d chains.DaemonConfig, B string, b portmap.Published) []string {
	f := familyOf(b.ContainerIP)
	P := string(b.Proto)
	C, H := b.ContainerIP.Unmap(), b.HostIP.Unmap()
	dnat := ""
	if f == IPv6 {
		dnat = "! -s fe80::/10 "
	}
	if H.IsValid() && !H.IsUnspecified() {
		dnat += "-d " + hostSpec(H) + " "
	}
	if d.UserlandProxy {
		dnat += "! -i " + B + " "
	}
	dnat += fmt.Sprintf("-p %s -m %s --dport %d -j DNAT --to-destination %s", P, P, b.HostPort, netip.AddrPortFrom(C, b.ContainerPort))
	out := []string{dnat,
		fmt.Sprintf("-d %s ! -i %s -o %s -p %s -m %s --dport %d -j ACCEPT", hostSpec(C), B, B, P, P, b.ContainerPort),
		fmt.Sprintf("-s %s -d %s -p %s -m %s --dport %d -j MASQUERADE", hostSpec(C), hostSpec(C), P, P, b.ContainerPort)}
	if H.IsValid() && !H.IsUnspecified() && isLoopback(H) && !d.AllowDirectRouting {
		out = append(out, fmt.Sprintf("-d %s ! -i lo -p %s -m %s --dport %d -j DROP", hostSpec(H), P, P, b.HostPort))
	}
	return out
}
