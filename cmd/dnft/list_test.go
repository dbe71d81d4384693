package main

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/portmap"
)

func TestWriteList(t *testing.T) {
	in := compat.Input{
		Initialized: true,
		Networks: []dnft.Network{
			{NetworkConfig: dnft.NetworkConfig{Name: "bridge", Bridge: "docker0", Subnet4: netip.MustParsePrefix("172.17.0.0/16"),
				Subnet6: netip.MustParsePrefix("fd00:17::/64"), ICC: true, Masquerade: true}},
			{NetworkConfig: dnft.NetworkConfig{Name: "int", Bridge: "br-int", Subnet4: netip.MustParsePrefix("10.0.0.0/8"), Internal: true}},
			{NetworkConfig: dnft.NetworkConfig{Name: "x", Bridge: "br-x", Subnet4: netip.MustParsePrefix("10.1.0.0/16"), ICC: true,
				HostIPv4: netip.MustParseAddr("192.0.2.1"), HostBindingIPv4: netip.MustParseAddr("192.0.2.2")}},
		},
		Bindings: []portmap.Published{{Network: "bridge", Binding: portmap.Binding{Proto: portmap.TCP,
			HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerIP: netip.MustParseAddr("172.17.0.2"), ContainerPort: 80}}},
		Ingress: []compat.Ingress{{Proto: portmap.UDP, Port: 53, Target: netip.MustParseAddr("172.18.0.2")}},
	}
	var b bytes.Buffer
	require.NoError(t, writeList(&b, in, nil))
	assert.Equal(t, `NETWORK   BRIDGE    SUBNETS                      OPTIONS
bridge    docker0   172.17.0.0/16,fd00:17::/64   -
int       br-int    10.0.0.0/8                   internal,icc=off
x         br-x      10.1.0.0/16                  masquerade=off,snat=192.0.2.1,host-ip=192.0.2.2

PUBLISHED                         NETWORK   PACKETS   BYTES
0.0.0.0:8080->172.17.0.2:80/tcp   bridge    0         0

INGRESS              GATEWAY           PACKETS   BYTES
53/udp->172.18.0.2   docker_gwbridge   0         0
`, b.String())
}
