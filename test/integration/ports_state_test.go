package integration_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
)

// scratchFirewall initializes dnft in a bare namespace with network a
// (172.18.0.0/16, fd00:18::/64) and network b (172.19.0.0/16, host
// binding address 192.0.2.1), for tests of state rather than packets.
func scratchFirewall(ctx context.Context, t *testing.T) (*harness.NS, *dnft.Firewall) {
	t.Helper()
	ns := harness.Scratch(t)
	fw := openFirewall(ctx, t, ns)
	require.NoError(t, fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPv6: true, IPForward: true}))
	require.NoError(t, fw.CreateNetwork(ctx, dnft.NetworkConfig{Name: "a", Bridge: "br-a",
		Subnet4: pfx("172.18.0.0/16"), Subnet6: pfx("fd00:18::/64"), ICC: true, Masquerade: true}))
	require.NoError(t, fw.CreateNetwork(ctx, dnft.NetworkConfig{Name: "b", Bridge: "br-b",
		Subnet4: pfx("172.19.0.0/16"), HostBindingIPv4: ip("192.0.2.1"), ICC: true, Masquerade: true}))
	return ns, fw
}

func openFirewall(ctx context.Context, t *testing.T, ns *harness.NS) *dnft.Firewall {
	t.Helper()
	fw, err := dnft.Open(ctx, ns.Path())
	require.NoError(t, err)
	t.Cleanup(func() { fw.Close() })
	return fw
}

func portSpecs(t *testing.T, ss ...string) []dnft.PortSpec {
	t.Helper()
	var out []dnft.PortSpec
	for _, s := range ss {
		sp, err := dnft.ParsePortSpec(s)
		require.NoError(t, err, s)
		out = append(out, sp)
	}
	return out
}

func bindingStrings(bs []dnft.Binding) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.String())
	}
	return out
}

func statelessRuleset(ctx context.Context, t *testing.T, ns *harness.NS) string {
	t.Helper()
	out, err := ns.Run(ctx, "nft", "-s", "list", "ruleset")
	require.NoError(t, err, out)
	return out
}

// TestPortSpecs: PublishSpecs allocates host ports deterministically
// (lowest free of 32768-60999, per proto and family, whatever network
// holds them) and returns the bindings; UnpublishSpecs finds them again.
func TestPortSpecs(t *testing.T) {
	ctx := testContext(t)
	_, fw := scratchFirewall(ctx, t)
	pub := func(network, c string, ss ...string) []string {
		t.Helper()
		bs, err := fw.PublishSpecs(ctx, network, ip(c), portSpecs(t, ss...))
		require.NoError(t, err, "%v", ss)
		return bindingStrings(bs)
	}
	require.Equal(t, []string{"0.0.0.0:32768->172.18.0.2:80/tcp", "0.0.0.0:32769->172.18.0.2:443/tcp", "0.0.0.0:32768->172.18.0.2:53/udp"},
		pub("a", "172.18.0.2", "80", "443", "53/udp"))
	require.Equal(t, []string{"[::]:32768->[fd00:18::2]:80/tcp"}, pub("a", "fd00:18::2", "80"), "the other family has its own ports")
	require.Equal(t, []string{"192.0.2.1:32770->172.19.0.2:80/tcp"}, pub("b", "172.19.0.2", "80"), "the default binding address overlaps all addresses")
	require.Equal(t, []string{"127.0.0.1:8081->172.18.0.3:80/tcp", "0.0.0.0:8080->172.18.0.3:81/tcp"},
		pub("a", "172.18.0.3", "127.0.0.1:8081:80", "8080-8090:81"))
	require.Equal(t, []string{"0.0.0.0:8082->172.18.0.4:80/tcp"}, pub("a", "172.18.0.4", "8080-8090:80"))

	gone, err := fw.UnpublishSpecs(ctx, "a", ip("172.18.0.2"), portSpecs(t, "443"))
	require.NoError(t, err)
	require.Equal(t, []string{"0.0.0.0:32769->172.18.0.2:443/tcp"}, bindingStrings(gone))
	require.Equal(t, []string{"0.0.0.0:32769->172.18.0.5:80/tcp"}, pub("a", "172.18.0.5", "80"), "a freed port is the lowest free again")

	ports, err := fw.Ports(ctx)
	require.NoError(t, err)
	require.Len(t, ports, 8)
}

// TestPortsForceRemove: a network with published ports is not removed
// unless forced; forced, its ports go in the same batch (one generation
// step), leaving exactly the ruleset that unpublishing them and then
// removing the network leaves.
func TestPortsForceRemove(t *testing.T) {
	ctx := testContext(t)
	var rulesets []string
	for _, force := range []bool{false, true} {
		ns, fw := scratchFirewall(ctx, t)
		bs := []portmap.Binding{
			reference.Bind(portmap.TCP, "", 8080, "172.18.0.2", 80),
			reference.Bind(portmap.UDP, "127.0.0.1", 8080, "172.18.0.2", 80),
			reference.Bind(portmap.TCP, "", 8080, "fd00:18::2", 80),
		}
		require.NoError(t, fw.Publish(ctx, "a", bs))
		require.NoError(t, fw.Publish(ctx, "b", []portmap.Binding{reference.Bind(portmap.TCP, "", 9000, "172.19.0.2", 80)}))
		before := statelessRuleset(ctx, t, ns)

		err := fw.RemoveNetwork(ctx, "a", false)
		var fe *dnft.FieldError
		require.ErrorAs(t, err, &fe)
		require.Contains(t, err.Error(), "still has 3 published port(s)")
		require.Equal(t, before, statelessRuleset(ctx, t, ns), "a refused removal changes nothing")

		if force {
			c, err := nft.Open(ctx, ns.Path())
			require.NoError(t, err)
			g0, err := c.Generation(ctx)
			require.NoError(t, err)
			require.NoError(t, fw.RemoveNetwork(ctx, "a", true))
			g1, err := c.Generation(ctx)
			require.NoError(t, err)
			c.Close()
			require.Equal(t, g0+1, g1, "one batch")
		} else {
			require.NoError(t, fw.Unpublish(ctx, "a", bs))
			require.NoError(t, fw.RemoveNetwork(ctx, "a", false))
		}
		ports, err := fw.Ports(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"b 192.0.2.1:9000->172.19.0.2:80/tcp"}, []string{ports[0].Network + " " + ports[0].String()})
		nets, err := fw.Networks(ctx)
		require.NoError(t, err)
		require.Len(t, nets, 1)
		// Sequence numbers (creation times) differ between the two runs.
		rulesets = append(rulesets, regexp.MustCompile(`;q=[0-9a-z]+`).ReplaceAllString(statelessRuleset(ctx, t, ns), ";q=SEQ"))
	}
	require.Equal(t, rulesets[0], rulesets[1])
}

// TestPortsGeneration: a Firewall checks what it keeps against the
// kernel's ruleset generation, so changes made by another Firewall (another
// process) or by an operator are seen by its next operation.
func TestPortsGeneration(t *testing.T) {
	ctx := testContext(t)
	ns, fw1 := scratchFirewall(ctx, t)
	fw2 := openFirewall(ctx, t, ns)
	b8080 := []portmap.Binding{reference.Bind(portmap.TCP, "", 8080, "172.18.0.2", 80)}
	b9000 := []portmap.Binding{reference.Bind(portmap.TCP, "", 9000, "172.18.0.3", 80)}

	require.NoError(t, fw1.Publish(ctx, "a", b8080))
	require.NoError(t, fw2.Unpublish(ctx, "a", b8080), "fw2 loads fw1's binding")
	require.NoError(t, fw1.Publish(ctx, "a", b8080), "fw1 sees that fw2 unpublished it")
	require.NoError(t, fw2.Publish(ctx, "a", b9000))
	err := fw1.Publish(ctx, "a", b9000)
	require.ErrorContains(t, err, "already published", "fw1 sees fw2's binding")

	// Ephemeral allocation sees the other Firewall's ports.
	got, err := fw2.PublishSpecs(ctx, "a", ip("172.18.0.4"), portSpecs(t, "80"))
	require.NoError(t, err)
	require.Equal(t, []string{"0.0.0.0:32768->172.18.0.4:80/tcp"}, bindingStrings(got))
	got, err = fw1.PublishSpecs(ctx, "a", ip("172.18.0.5"), portSpecs(t, "80"))
	require.NoError(t, err)
	require.Equal(t, []string{"0.0.0.0:32769->172.18.0.5:80/tcp"}, bindingStrings(got))

	// Networks too.
	require.NoError(t, fw2.CreateNetwork(ctx, dnft.NetworkConfig{Name: "c", Bridge: "br-c", Subnet4: pfx("172.20.0.0/16"), ICC: true, Masquerade: true}))
	require.NoError(t, fw1.Publish(ctx, "c", []portmap.Binding{reference.Bind(portmap.TCP, "", 7000, "172.20.0.2", 80)}))
	require.NoError(t, fw2.RemoveNetwork(ctx, "c", true))
	err = fw1.Publish(ctx, "c", []portmap.Binding{reference.Bind(portmap.TCP, "", 7001, "172.20.0.2", 80)})
	require.ErrorContains(t, err, "no such network")

	// An operator deletes a DNAT element by hand: the binding is gone for
	// dnft too, and publishing it again works.
	out, err := ns.Run(ctx, "nft", "delete", "element", "ip", "dnft", portmap.MapDNATAny, "{ tcp . 8080 }")
	require.NoError(t, err, out)
	ports, err := fw1.Ports(ctx)
	require.NoError(t, err)
	for _, p := range ports {
		require.NotEqual(t, uint16(8080), p.HostPort)
	}
	err = fw1.Unpublish(ctx, "a", b8080)
	require.ErrorContains(t, err, "not published")
	require.NoError(t, fw1.Publish(ctx, "a", b8080))
	ports, err = fw2.Ports(ctx)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:8080->172.18.0.2:80/tcp", ports[len(ports)-1].String())
}

// TestPortSpecsSkipIngress: host port allocation skips ports that an
// ingress port holds, and an explicit one is refused naming it.
func TestPortSpecsSkipIngress(t *testing.T) {
	ctx := testContext(t)
	_, fw := scratchFirewall(ctx, t)
	require.NoError(t, fw.PublishIngress(ctx, dnft.IngressPort{Proto: portmap.TCP, Port: 32768, Target: ip("172.30.0.2")}))
	got, err := fw.PublishSpecs(ctx, "a", ip("172.18.0.2"), portSpecs(t, "80", "81/udp"))
	require.NoError(t, err)
	require.Equal(t, []string{"0.0.0.0:32769->172.18.0.2:80/tcp", "0.0.0.0:32768->172.18.0.2:81/udp"}, bindingStrings(got))
	_, err = fw.PublishSpecs(ctx, "a", ip("172.18.0.3"), portSpecs(t, "127.0.0.1:32768:80"))
	var fe *dnft.FieldError
	require.ErrorAs(t, err, &fe)
	require.ErrorContains(t, err, "host port 32768/tcp is held by ingress port")
}
