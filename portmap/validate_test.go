package portmap

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/stretchr/testify/require"
)

var (
	d4   = chains.DaemonConfig{UserlandProxy: true}
	d6   = chains.DaemonConfig{UserlandProxy: true, IPv6: true}
	netA = chains.Network{NetworkConfig: chains.NetworkConfig{Name: "a", Bridge: "br-a", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), Subnet6: netip.MustParsePrefix("fd00:18::/64"), ICC: true, Masquerade: true}, Seq: 1}
	netB = chains.Network{NetworkConfig: chains.NetworkConfig{Name: "b", Bridge: "br-b", Subnet4: netip.MustParsePrefix("172.19.0.0/16"), HostBindingIPv4: netip.MustParseAddr("192.0.2.1"), ICC: true, Masquerade: true}, Seq: 2}
	netI = chains.Network{NetworkConfig: chains.NetworkConfig{Name: "i", Bridge: "br-i", Subnet4: netip.MustParsePrefix("172.20.0.0/16"), Internal: true, ICC: true}, Seq: 3}
)

// bind parses "[H:]HP->C:CP/P" (H may be empty for the default).
func bind(s string) Binding {
	spec, proto, _ := strings.Cut(s, "/")
	host, ctr, _ := strings.Cut(spec, "->")
	var b Binding
	b.Proto = Proto(proto)
	c := netip.MustParseAddrPort(ctr)
	b.ContainerIP, b.ContainerPort = c.Addr(), c.Port()
	if i := strings.LastIndex(host, ":"); i >= 0 {
		b.HostIP = netip.MustParseAddr(strings.Trim(host[:i], "[]"))
		host = host[i+1:]
	}
	var p int
	fmt.Sscan(host, &p)
	b.HostPort = uint16(p)
	return b
}

func pub(network string, seq int64, s string) Published {
	n := netA
	if network == "b" {
		n = netB
	}
	b, err := Normalize(d6, n, bind(s))
	if err != nil {
		panic(err)
	}
	return Published{Network: network, Binding: b, Seq: seq}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		d    chains.DaemonConfig
		n    chains.Network
		in   string
		want string // normalised binding, or "field: reason substring"
	}{
		{d4, netA, "8080->172.18.0.2:80/tcp", "0.0.0.0:8080->172.18.0.2:80/tcp"},
		{d4, netA, "0.0.0.0:8080->172.18.0.2:80/udp", "0.0.0.0:8080->172.18.0.2:80/udp"},
		{d4, netA, "127.0.0.1:8080->172.18.0.2:80/sctp", "127.0.0.1:8080->172.18.0.2:80/sctp"},
		{d4, netB, "8080->172.19.0.2:80/tcp", "192.0.2.1:8080->172.19.0.2:80/tcp"},       // default binding address
		{d4, netB, "0.0.0.0:8080->172.19.0.2:80/tcp", "0.0.0.0:8080->172.19.0.2:80/tcp"}, // explicit all addresses
		{d6, netA, "8080->[fd00:18::2]:80/tcp", "[::]:8080->[fd00:18::2]:80/tcp"},
		{d6, netA, "[::1]:8080->[fd00:18::2]:80/tcp", "[::1]:8080->[fd00:18::2]:80/tcp"},
		{d6, netB, "8080->[fd00:18::2]:80/tcp", "container-ip: no IPv6 subnet"},
		{d4, netA, "8080->[fd00:18::2]:80/tcp", "container-ip: IPv6 is not enabled"},
		{d4, netA, "8080->172.18.0.2:80/icmp", "proto: must be tcp, udp or sctp"},
		{d4, netA, "8080->172.18.0.2:80/", "proto: must be tcp, udp or sctp"},
		{d4, netA, "0->172.18.0.2:80/tcp", "host-port: must be 1-65535"},
		{d4, netA, "8080->172.18.0.2:0/tcp", "container-port: must be 1-65535"},
		{d4, netA, "8080->172.19.0.2:80/tcp", `container-ip: not in network "a"'s subnet 172.18.0.0/16`},
		{d6, netA, "8080->[fd00:19::2]:80/tcp", `container-ip: not in network "a"'s subnet fd00:18::/64`},
		{d6, netA, "[::1]:8080->172.18.0.2:80/tcp", "host-ip: the container address 172.18.0.2 is of the other address family"},
		{d6, netA, "192.0.2.1:8080->[fd00:18::2]:80/tcp", "host-ip: the container address fd00:18::2 is of the other address family"},
		{d4, netA, "224.0.0.1:8080->172.18.0.2:80/tcp", "host-ip: must not be a multicast"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Normalize(tc.d, tc.n, bind(tc.in))
			field, reason, isErr := strings.Cut(tc.want, ": ")
			if !isErr {
				require.NoError(t, err)
				require.Equal(t, tc.want, got.String())
				require.True(t, got.HostIP.IsValid())
				return
			}
			var fe *chains.FieldError
			require.True(t, errors.As(err, &fe), "want a FieldError, got %v", err)
			require.Equal(t, field, fe.Field)
			require.Contains(t, fe.Reason, reason)
		})
	}
	_, err := Normalize(d4, netA, Binding{Proto: TCP, HostPort: 1, ContainerPort: 1})
	require.ErrorContains(t, err, "container address is required")
}

func TestCheckPublish(t *testing.T) {
	existing := []Published{
		pub("a", 10, "0.0.0.0:8080->172.18.0.2:80/tcp"),
		pub("a", 11, "192.0.2.1:9000->172.18.0.2:80/tcp"),
		pub("b", 12, "8081->172.19.0.2:80/udp"), // 192.0.2.1 by default
		pub("a", 13, "[::]:8080->[fd00:18::2]:80/tcp"),
	}
	for _, tc := range []struct {
		name string
		n    chains.Network
		bs   []string
		want string // "" for success, else a substring of the error
	}{
		{"free port", netA, []string{"8082->172.18.0.2:80/tcp"}, ""},
		{"same port other proto", netA, []string{"8080->172.18.0.2:80/udp"}, ""},
		{"same port other specific address", netA, []string{"198.51.100.1:9000->172.18.0.3:80/tcp"}, ""},
		{"same port other family", netA, []string{"[::]:9000->[fd00:18::3]:80/tcp"}, ""},
		{"same container port twice", netA, []string{"8082->172.18.0.2:80/tcp", "8083->172.18.0.2:80/tcp"}, ""},
		{"exact duplicate", netA, []string{"0.0.0.0:8080->172.18.0.2:80/tcp"}, `already published on network "a"`},
		{"same address other container", netA, []string{"8080->172.18.0.3:80/tcp"}, `0.0.0.0:8080/tcp is already published by network "a"`},
		{"specific under wildcard", netA, []string{"198.51.100.1:8080->172.18.0.3:80/tcp"}, `overlaps 0.0.0.0:8080/tcp, already published by network "a"`},
		{"wildcard over specific", netA, []string{"0.0.0.0:9000->172.18.0.3:80/tcp"}, `overlaps 192.0.2.1:9000/tcp`},
		{"across networks", netA, []string{"192.0.2.1:8081->172.18.0.3:80/udp"}, `already published by network "b"`},
		{"default binding address conflicts", netB, []string{"9000->172.19.0.3:80/tcp"}, `192.0.2.1:9000/tcp is already published by network "a"`},
		{"v6 wildcard", netA, []string{"[::1]:8080->[fd00:18::3]:80/tcp"}, `overlaps [::]:8080/tcp`},
		{"duplicate in call", netA, []string{"8082->172.18.0.2:80/tcp", "8082->172.18.0.3:80/tcp"}, "conflicts with binding 1 of the same request"},
		{"overlap in call", netA, []string{"127.0.0.1:8082->172.18.0.2:80/tcp", "8082->172.18.0.3:80/tcp"}, "conflicts with binding 1"},
		{"bad binding", netA, []string{"8082->172.18.0.2:80/tcp", "8083->172.18.0.2:0/tcp"}, "container-port"},
		{"internal network", netI, []string{"8082->172.20.0.2:80/tcp"}, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []Binding
			for _, s := range tc.bs {
				bs = append(bs, bind(s))
			}
			got, err := CheckPublish(d6, tc.n, bs, existing)
			if tc.want == "" {
				require.NoError(t, err)
				require.Len(t, got, len(bs))
				return
			}
			require.ErrorContains(t, err, tc.want)
			var fe *chains.FieldError
			require.True(t, errors.As(err, &fe))
			require.Nil(t, got)
		})
	}
}

func TestCheckUnpublish(t *testing.T) {
	existing := []Published{
		pub("a", 10, "0.0.0.0:8080->172.18.0.2:80/tcp"),
		pub("b", 12, "8081->172.19.0.2:80/udp"),
	}
	for _, tc := range []struct {
		name string
		n    chains.Network
		bs   []string
		want string
	}{
		{"published", netA, []string{"8080->172.18.0.2:80/tcp"}, ""},
		{"by default address", netB, []string{"8081->172.19.0.2:80/udp"}, ""},
		{"explicit default address", netB, []string{"192.0.2.1:8081->172.19.0.2:80/udp"}, ""},
		{"wildcard is not the default address", netB, []string{"0.0.0.0:8081->172.19.0.2:80/udp"}, `not published on network "b"`},
		{"other container", netA, []string{"8080->172.18.0.3:80/tcp"}, `(0.0.0.0:8080/tcp is published by network "a" as 0.0.0.0:8080->172.18.0.2:80/tcp)`},
		{"twice", netA, []string{"8080->172.18.0.2:80/tcp", "0.0.0.0:8080->172.18.0.2:80/tcp"}, "listed twice"},
		{"bad", netA, []string{"8080->172.18.0.2:80/xyz"}, "proto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []Binding
			for _, s := range tc.bs {
				bs = append(bs, bind(s))
			}
			_, err := CheckUnpublish(d6, tc.n, bs, existing)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestElements checks which elements a binding owns, per daemon mode.
func TestElements(t *testing.T) {
	names := func(d chains.DaemonConfig, s string) []string {
		b, err := Normalize(d, netA, bind(s))
		require.NoError(t, err)
		var out []string
		for _, x := range elements(d, netA, b, 36) {
			out = append(out, x.set.Name)
		}
		return out
	}
	require.Equal(t, []string{"dnat-any", "dnat-skip-any", "published", "hairpin"}, names(d4, "8080->172.18.0.2:80/tcp"))
	require.Equal(t, []string{"dnat-any", "dnat-skip-any", "published", "hairpin"}, names(chains.DaemonConfig{}, "8080->172.18.0.2:80/tcp"), "the skip element is also the binding's second record")
	require.Equal(t, []string{"dnat-host", "dnat-skip-host", "loopback-ports", "published", "hairpin"}, names(d4, "127.0.0.1:8080->172.18.0.2:80/tcp"))
	require.Equal(t, []string{"dnat-host", "dnat-skip-host", "published", "hairpin"}, names(chains.DaemonConfig{UserlandProxy: true, AllowDirectRouting: true}, "127.0.0.1:8080->172.18.0.2:80/tcp"))
	require.Equal(t, []string{"dnat-host", "dnat-skip-host", "published", "hairpin"}, names(chains.DaemonConfig{}, "192.0.2.1:8080->172.18.0.2:80/tcp"))
	require.Equal(t, []string{"dnat-host", "dnat-skip-host", "loopback-ports", "published", "hairpin"}, names(d6, "[::1]:8080->[fd00:18::2]:80/tcp"))

	b, _ := Normalize(d4, netA, bind("8080->172.18.0.2:80/tcp"))
	x := elements(d4, netA, b, 36)[0]
	require.Equal(t, "dnft1;net=a;q=10", x.e.Comment)
	require.Equal(t, netip.MustParseAddrPort("172.18.0.2:80"), x.e.Target)
}

// TestSharedElements: a container port published twice shares its filter
// accept and hairpin elements; unpublishing one binding keeps them.
func TestSharedElements(t *testing.T) {
	first := pub("a", 10, "8080->172.18.0.2:80/tcp")
	second := pub("a", 11, "127.0.0.1:8082->172.18.0.2:80/tcp")
	count := func(tx *nft.Tx) int { return tx.Len() }

	tx := &nft.Tx{}
	Publish(tx, d4, netA, []Binding{second.Binding}, 11, []Published{first})
	// dnat-host, dnat-skip-host, loopback-ports, the host port's count, and
	// the container port's count replaced (deleted, added as 2): published
	// and hairpin already exist.
	require.Equal(t, 6, count(tx))

	tx = &nft.Tx{}
	Unpublish(tx, d4, netA, []Binding{second.Binding}, []Published{first, second})
	require.Equal(t, 7, count(tx)) // and first's hairpin now at second's place (positions)

	tx = &nft.Tx{}
	Unpublish(tx, d4, netA, []Binding{first.Binding, second.Binding}, []Published{first, second})
	require.Equal(t, 9, count(tx)) // each set once: any, skip-any, host, skip-host, loopback, published, hairpin, targets, host-ports

	// Publishing both in one call adds each shared element once.
	tx = &nft.Tx{}
	Publish(tx, d4, netA, []Binding{first.Binding, second.Binding}, 10, nil)
	require.Equal(t, 9, count(tx))
}

func TestParseRecord(t *testing.T) {
	n, q, err := parseRecord(record("my-net", 1234567, true))
	require.NoError(t, err)
	require.Equal(t, "my-net", n)
	require.Equal(t, int64(1234567), q)
	for _, bad := range []string{"", "dnft1;net=a", "dnft2;net=a;q=1", "dnft1;q=1", "dnft1;net=a;q=!"} {
		_, _, err := parseRecord(bad)
		require.Error(t, err, bad)
	}
	// The longest record fits the kernel's 128-byte element comment.
	require.LessOrEqual(t, len(record(strings.Repeat("n", 64), 1<<62, true)), 128)
}
