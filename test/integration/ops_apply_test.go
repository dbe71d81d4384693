package integration_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/nft"
	"github.com/stretchr/testify/require"
)

// natOutputCounter reads the packets counted by nat-OUTPUT's DOCKER jump.
func natOutputCounter(t *testing.T, ruleset string) string {
	t.Helper()
	m := regexp.MustCompile(`counter packets (\d+) bytes \d+ jump nat-DOCKER comment "DOCKER"`).FindAllStringSubmatch(ruleset, -1)
	require.NotEmpty(t, m)
	return m[len(m)-1][1]
}

// TestApplyDifference: apply sends only the difference between the
// namespace and the declared state, in one batch: untouched rules keep
// their counters, a network whose configuration changed is removed and
// created again with its bindings, and applying the result again sends
// nothing.
func TestApplyDifference(t *testing.T) {
	ctx := testContext(t)
	ns, fw := richState(ctx, t)
	// Count a packet in nat-OUTPUT (to a local address, not loopback).
	_, err := ns.Run(ctx, "ip", "addr", "add", "198.51.100.50/32", "dev", "lo")
	require.NoError(t, err)
	ns.UDP(ctx, addrPort(ip("198.51.100.50"), 9))
	count := natOutputCounter(t, mustNft(ctx, t, ns, "list", "table", "ip", "dnft"))
	require.NotEqual(t, "0", count)

	cur, err := fw.Save(ctx)
	require.NoError(t, err)
	want := cur
	// Drop network int, re-configure late (ICC on), drop one binding of
	// b and add one, one ingress reference less, new DOCKER-USER rules.
	want.Networks = slices.DeleteFunc(slices.Clone(cur.Networks), func(n dnft.Network) bool { return n.Name == "int" })
	for i := range want.Networks {
		if want.Networks[i].Name == "late" {
			want.Networks[i].ICC = true
		}
	}
	want.Ports = slices.DeleteFunc(slices.Clone(cur.Ports), func(p dnft.Published) bool { return p.HostPort == 7001 })
	want.Ports = append(want.Ports,
		dnft.Published{Network: "b", Binding: dnft.Binding{Proto: "udp", HostPort: 7002, ContainerIP: ip("172.19.0.3"), ContainerPort: 72}},
		dnft.Published{Network: "late", Binding: dnft.Binding{Proto: "tcp", HostPort: 7003, ContainerIP: ip("172.22.0.5"), ContainerPort: 80}})
	want.Ingress = slices.Clone(cur.Ingress)
	want.Ingress[0].Refs = 1
	want.DockerUser = cur.DockerUser[1:]

	g := generation(ctx, t, fw)
	p, err := fw.Apply(ctx, want)
	require.NoError(t, err)
	require.Equal(t, g+1, generation(ctx, t, fw), "one batch")
	t.Logf("plan:\n%s", p)
	require.False(t, p.Rebuilt)
	require.Equal(t, []string{"int"}, p.NetworksRemoved)
	require.Equal(t, []string{"late"}, p.NetworksRecreated)
	require.Empty(t, p.NetworksCreated)
	require.Equal(t, 2, p.PortsPublished)
	require.Equal(t, 1, p.PortsUnpublished)
	require.Equal(t, 1, p.IngressUnpublished)
	require.Equal(t, []nft.Family{nft.IPv4}, p.DockerUser)

	got, err := fw.Save(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "late"}, names(got.Networks))
	require.True(t, got.Networks[2].ICC)
	require.Len(t, got.Ports, len(want.Ports))
	require.Equal(t, 1, got.Ingress[0].Refs)
	require.Len(t, got.DockerUser, len(want.DockerUser))
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)
	require.Equal(t, count, natOutputCounter(t, mustNft(ctx, t, ns, "list", "table", "ip", "dnft")), "untouched rules keep their counters")

	g = generation(ctx, t, fw)
	p, err = fw.Apply(ctx, got)
	require.NoError(t, err)
	require.Zero(t, p.Changes)
	require.Equal(t, g, generation(ctx, t, fw), "nothing to send")

	// Without a docker_user list, DOCKER-USER is left alone.
	got.DockerUser = nil
	got.Ports = got.Ports[1:]
	p, err = fw.Apply(ctx, got)
	require.NoError(t, err)
	require.Empty(t, p.DockerUser)
	require.Equal(t, 1, p.PortsUnpublished)
}

func names(nets []dnft.Network) []string {
	var out []string
	for _, n := range nets {
		out = append(out, n.Name)
	}
	return out
}

// TestApplyDeclared: a hand-written state (no sequence numbers, defaults
// left out) is applied to an empty namespace, and then a different init
// configuration rebuilds the tables; each time one batch, and applying
// the same document again sends nothing.
func TestApplyDeclared(t *testing.T) {
	ctx := testContext(t)
	ns, fw := scratchFirewall(ctx, t)
	require.NoError(t, fw.Reset(ctx))
	doc := `{"version": 1,
	  "daemon": {},
	  "networks": [{"name": "web", "bridge": "br-web", "subnets": ["10.10.0.0/24"]}],
	  "ports": [{"network": "web", "host_port": 80, "container_ip": "10.10.0.2", "container_port": 8080}],
	  "ingress": [{"port": 9000, "target": "10.20.0.2"}]}`
	for _, proxy := range []string{"", `"userland_proxy": false`} {
		s, err := dnft.ParseState([]byte(regexp.MustCompile(`"daemon": \{\}`).ReplaceAllString(doc, `"daemon": {`+proxy+`}`)))
		require.NoError(t, err)
		g := generation(ctx, t, fw)
		p, err := fw.Apply(ctx, s)
		require.NoError(t, err)
		require.True(t, p.Rebuilt)
		require.Equal(t, g+1, generation(ctx, t, fw))
		p, err = fw.Apply(ctx, s)
		require.NoError(t, err)
		require.Zero(t, p.Changes, "%s", p)
		d, ok, err := fw.Daemon(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, proxy == "", d.UserlandProxy)
		require.Contains(t, mustCLI(ctx, t, ns, "port", "ls"), "10.10.0.2:8080")
	}
	// A state without daemon removes dnft's tables.
	p, err := fw.Apply(ctx, dnft.State{})
	require.NoError(t, err)
	require.True(t, p.Rebuilt)
	require.Equal(t, "", mustNft(ctx, t, ns, "list", "tables"))
}
