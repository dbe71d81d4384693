package integration_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// richState programs a state with every kind of object into a scratch
// namespace: both families, three networks (one internal, one with a
// host binding address), bindings of every kind, ingress ports with
// several references, and DOCKER-USER rules of both families.
func richState(ctx context.Context, t *testing.T) (*harness.NS, *dnft.Firewall) {
	t.Helper()
	ns, fw := scratchFirewall(ctx, t)
	require.NoError(t, fw.CreateNetwork(ctx, dnft.NetworkConfig{Name: "int", Bridge: "br-int",
		Subnet4: pfx("172.21.0.0/16"), Internal: true, ICC: true}))
	_, err := fw.PublishSpecs(ctx, "a", ip("172.18.0.2"), portSpecs(t, "8080:80", "127.0.0.1:8443:443", "5353:53/udp", "9000-9003:9000-9003/sctp"))
	require.NoError(t, err)
	_, err = fw.PublishSpecs(ctx, "a", ip("fd00:18::2"), portSpecs(t, "8080:80"))
	require.NoError(t, err)
	_, err = fw.PublishSpecs(ctx, "b", ip("172.19.0.3"), portSpecs(t, "7000:70", "7001:70"))
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, fw.PublishIngress(ctx, dnft.IngressPort{Proto: "tcp", Port: 30000, Target: ip("172.30.0.2")}))
	}
	require.NoError(t, fw.PublishIngress(ctx, dnft.IngressPort{Proto: "udp", Port: 30001, Target: ip("172.30.0.2"), GwBridge: "gw1"}))
	require.NoError(t, fw.CreateNetwork(ctx, dnft.NetworkConfig{Name: "late", Bridge: "br-late",
		Subnet4: pfx("172.22.0.0/16"), ICC: false, Masquerade: true, HostIPv4: ip("192.0.2.7")}))
	for _, r := range [][]string{
		{"ip", "ip saddr 172.18.0.2 ip daddr 203.0.113.2 counter drop comment \"no web\""},
		{"ip", "iifname \"eth9\" tcp dport 22 ct state established,related accept"},
		{"ip6", "ip6 saddr fd00:18::2 counter reject"},
	} {
		out, err := ns.Run(ctx, "nft", "insert rule "+r[0]+" dnft DOCKER-USER "+r[1])
		require.NoError(t, err, out)
	}
	return ns, fw
}

// iptablesSave is dnft's iptables-save and ip6tables-save view, less the
// comment lines (they carry the time).
func iptablesSave(ctx context.Context, t *testing.T, ns *harness.NS) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		for _, line := range strings.SplitAfter(mustCLI(ctx, t, ns, cmd), "\n") {
			if !strings.HasPrefix(line, "#") {
				b.WriteString(line)
			}
		}
	}
	return b.String()
}

// TestSaveResetRestore: a saved state comes back byte for byte in
// `nft -s list ruleset` and in dnft's iptables-save view, through the
// library and through the command; saving is deterministic, and
// restoring the same state again sends nothing.
func TestSaveResetRestore(t *testing.T) {
	ctx := testContext(t)
	ns, fw := richState(ctx, t)
	before := statelessRuleset(ctx, t, ns)
	view := iptablesSave(ctx, t, ns)
	require.Contains(t, view, "-A DOCKER-INGRESS")
	s, err := fw.Save(ctx)
	require.NoError(t, err)
	doc, err := s.Encode()
	require.NoError(t, err)
	again, err := fw.Save(ctx)
	require.NoError(t, err)
	doc2, err := again.Encode()
	require.NoError(t, err)
	require.Equal(t, string(doc), string(doc2), "save is deterministic")
	require.Equal(t, string(doc), mustCLI(ctx, t, ns, "save"), "the command prints what the library saves")
	require.Contains(t, string(doc), `"nft": "ip saddr 172.18.0.2 ip daddr 203.0.113.2 counter drop comment \"no web\""`)

	parsed, err := dnft.ParseState(doc)
	require.NoError(t, err)
	require.NoError(t, fw.Reset(ctx))
	require.NoError(t, fw.Restore(ctx, parsed))
	require.Equal(t, before, statelessRuleset(ctx, t, ns))
	require.Equal(t, view, iptablesSave(ctx, t, ns))
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)

	g := generation(ctx, t, fw)
	require.NoError(t, fw.Restore(ctx, parsed))
	require.Equal(t, g, generation(ctx, t, fw), "restoring the same state sends nothing")

	// The same through the command, from stdin, onto a reset namespace
	// and then onto the restored one.
	mustCLI(ctx, t, ns, "reset")
	r := dnftCLI(ctx, t, ns, string(doc), "restore", "-")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, before, statelessRuleset(ctx, t, ns))
	require.Equal(t, view, iptablesSave(ctx, t, ns))
	g = generation(ctx, t, fw)
	r = dnftCLI(ctx, t, ns, string(doc), "restore")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, g, generation(ctx, t, fw), "restoring the same state sends nothing")
}

// TestRestoreOverOtherState: restore replaces whatever state is there, in
// one batch.
func TestRestoreOverOtherState(t *testing.T) {
	ctx := testContext(t)
	ns, fw := richState(ctx, t)
	want := statelessRuleset(ctx, t, ns)
	s, err := fw.Save(ctx)
	require.NoError(t, err)
	require.NoError(t, fw.RemoveNetwork(ctx, "a", true))
	require.NoError(t, fw.CreateNetwork(ctx, dnft.NetworkConfig{Name: "z", Bridge: "br-z", Subnet4: pfx("10.77.0.0/16"), ICC: true}))
	out := mustNft(ctx, t, ns, "add rule ip dnft DOCKER-USER counter accept")
	g := generation(ctx, t, fw)
	require.NoError(t, fw.Restore(ctx, s), out)
	require.Equal(t, g+1, generation(ctx, t, fw), "one batch")
	require.Equal(t, want, statelessRuleset(ctx, t, ns))
}

// TestUnreproducibleUserRule: a DOCKER-USER rule that dnft cannot
// re-create exactly (here an rt expression) makes save refuse
// rather than save a changed rule, and repair refuse rather than lose
// it; check and apply, which do not re-create DOCKER-USER, still work.
func TestUnreproducibleUserRule(t *testing.T) {
	ctx := testContext(t)
	ns, fw := scratchFirewall(ctx, t)
	s, err := fw.Save(ctx)
	require.NoError(t, err)
	mustNft(ctx, t, ns, "insert rule ip dnft DOCKER-USER rt mtu 1500 counter accept")

	_, err = fw.Save(ctx)
	require.ErrorContains(t, err, `"rt"`)
	r := dnftCLI(ctx, t, ns, "", "save")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "refusing")

	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)

	deleteRule(ctx, t, ns, "filter-FORWARD", `comment "DOCKER-ISOLATION"`)
	damaged := statelessRuleset(ctx, t, ns)
	_, err = fw.Repair(ctx, nil)
	require.ErrorContains(t, err, "repairing would lose a DOCKER-USER rule")
	require.Equal(t, damaged, statelessRuleset(ctx, t, ns), "nothing changes")
	require.ErrorContains(t, fw.Restore(ctx, withUserRules(s, nil)), `"rt"`, "restore keeping DOCKER-USER refuses too")
	require.Equal(t, damaged, statelessRuleset(ctx, t, ns))

	// Apply leaves DOCKER-USER alone without a docker_user list.
	s.DockerUser = nil
	s.Ports = append(s.Ports, dnft.Published{Network: "a", Binding: dnft.Binding{Proto: "tcp", HostPort: 81, ContainerIP: ip("172.18.0.9"), ContainerPort: 80}})
	p, err := fw.Apply(ctx, s)
	require.NoError(t, err)
	require.Equal(t, 1, p.PortsPublished)
	require.Contains(t, mustNft(ctx, t, ns, "list", "chain", "ip", "dnft", "DOCKER-USER"), "rt mtu 1500")
}

// withUserRules returns s with DockerUser set to rules.
func withUserRules(s dnft.State, rules []dnft.UserRule) dnft.State {
	s.DockerUser = rules
	return s
}
