package portmap

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/stretchr/testify/require"
)

func specs(t testing.TB, ss ...string) []Spec {
	t.Helper()
	var out []Spec
	for _, s := range ss {
		sp, err := ParseSpec(s)
		require.NoError(t, err, s)
		out = append(out, sp)
	}
	return out
}

func strs(bs []Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.String())
	}
	return out
}

func TestResolve(t *testing.T) {
	existing := []Published{
		pub("a", 10, "0.0.0.0:8080->172.18.0.2:80/tcp"),
		pub("a", 11, "0.0.0.0:32768->172.18.0.2:81/tcp"),
		pub("a", 12, "127.0.0.1:32769->172.18.0.2:82/tcp"),
		pub("a", 13, "0.0.0.0:32768->172.18.0.2:81/udp"),
		pub("b", 14, "8000->172.19.0.2:80/tcp"), // 192.0.2.1
	}
	c := ip("172.18.0.9")
	for _, tc := range []struct {
		name  string
		n     chains.Network
		c     string
		specs []string
		want  string // bindings joined by " ", or "error: substring"
	}{
		{"ephemeral skips taken and overlapping", netA, "", []string{"80"}, "0.0.0.0:32770->172.18.0.9:80/tcp"},
		{"ephemeral per proto", netA, "", []string{"80/sctp"}, "0.0.0.0:32768->172.18.0.9:80/sctp"},
		{"ephemeral udp", netA, "", []string{"53/udp"}, "0.0.0.0:32769->172.18.0.9:53/udp"},
		{"ephemeral on a specific address", netA, "", []string{"192.0.2.9::80"}, "192.0.2.9:32769->172.18.0.9:80/tcp"},
		{"ephemeral on loopback", netA, "", []string{"127.0.0.1::80"}, "127.0.0.1:32770->172.18.0.9:80/tcp"},
		{"ephemeral other family", netA, "fd00:18::9", []string{"80"}, "[::]:32768->[fd00:18::9]:80/tcp"},
		{"ephemeral within a call", netA, "", []string{"80", "81", "82/udp"},
			"0.0.0.0:32770->172.18.0.9:80/tcp 0.0.0.0:32771->172.18.0.9:81/tcp 0.0.0.0:32769->172.18.0.9:82/udp"},
		{"explicit ports are claimed first", netA, "", []string{"80", "32770:81"},
			"0.0.0.0:32771->172.18.0.9:80/tcp 0.0.0.0:32770->172.18.0.9:81/tcp"},
		{"container range without host ports", netA, "", []string{"1000-1002"},
			"0.0.0.0:32770->172.18.0.9:1000/tcp 0.0.0.0:32771->172.18.0.9:1001/tcp 0.0.0.0:32772->172.18.0.9:1002/tcp"},
		{"one to one range", netA, "", []string{"9000-9002:9000-9002/udp"},
			"0.0.0.0:9000->172.18.0.9:9000/udp 0.0.0.0:9001->172.18.0.9:9001/udp 0.0.0.0:9002->172.18.0.9:9002/udp"},
		{"range to one port takes the first free", netA, "", []string{"8080-8090:80"}, "0.0.0.0:8081->172.18.0.9:80/tcp"},
		{"range to one port, twice", netA, "", []string{"8080-8090:80", "8080-8090:81"},
			"0.0.0.0:8081->172.18.0.9:80/tcp 0.0.0.0:8082->172.18.0.9:81/tcp"},
		{"default binding address", netB, "172.19.0.9", []string{"8000-8001:80"}, "192.0.2.1:8001->172.19.0.9:80/tcp"},
		{"explicit port", netA, "", []string{"127.0.0.1:8081:80"}, "127.0.0.1:8081->172.18.0.9:80/tcp"},

		{"range to one port, all taken", netA, "", []string{"8080-8080:80"}, "error: -p 8080:80/tcp: invalid binding"},
		{"range full", netA, "", []string{"32768-32769:80"}, `error: invalid port spec "32768-32769:80/tcp": no free tcp host port in 32768-32769 on 0.0.0.0`},
		{"taken", netA, "", []string{"8080:80"}, `error: -p 8080:80/tcp: invalid binding "0.0.0.0:8080->172.18.0.9:80/tcp": 0.0.0.0:8080/tcp is already published by network "a"`},
		{"overlap", netA, "", []string{"127.0.0.1:32768:80"}, `error: overlaps 0.0.0.0:32768/tcp`},
		{"twice in a call", netA, "", []string{"9000:80", "9000:81"}, "error: -p 9000:81/tcp: invalid binding \"0.0.0.0:9000->172.18.0.9:81/tcp\": conflicts with binding 1 of the same request"},
		{"family mismatch", netA, "", []string{"[::1]:9000:80"}, "error: -p [::1]:9000:80/tcp: invalid host-ip"},
		{"container address outside the network", netA, "172.19.0.9", []string{"80"}, "error: container-ip"},
		{"internal", netI, "172.20.0.9", []string{"80"}, "error: internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := c
			if tc.c != "" {
				ca = ip(tc.c)
			}
			x := NewIndex(existing)
			got, err := x.Resolve(d6, tc.n, ca, specs(t, tc.specs...), nil)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				require.ErrorContains(t, err, want)
				var fe *chains.FieldError
				require.True(t, errors.As(err, &fe), "a FieldError: %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, strings.Join(strs(got), " "))
			// What Resolve returns passes CheckPublish unchanged.
			norm, err := x.CheckPublish(d6, tc.n, got)
			require.NoError(t, err)
			require.Equal(t, got, norm)
		})
	}
}

func TestResolveReservedAndExhausted(t *testing.T) {
	x := NewIndex(nil)
	reserved := func(p Proto, port uint16) bool { return p == TCP && port < 32771 }
	got, err := x.Resolve(d4, netA, ip("172.18.0.2"), specs(t, "80", "80/udp"), reserved)
	require.NoError(t, err)
	require.Equal(t, []string{"0.0.0.0:32771->172.18.0.2:80/tcp", "0.0.0.0:32768->172.18.0.2:80/udp"}, strs(got))
	got, err = x.Resolve(d4, netA, ip("172.18.0.2"), specs(t, "32768:80"), reserved)
	require.NoError(t, err, "explicit ports are left to the caller")
	require.Equal(t, []string{"0.0.0.0:32768->172.18.0.2:80/tcp"}, strs(got))

	defer func(r PortRange) { EphemeralPorts = r }(EphemeralPorts)
	EphemeralPorts = PortRange{40000, 40001}
	_, err = x.Resolve(d4, netA, ip("172.18.0.2"), specs(t, "80-82"), nil)
	require.ErrorContains(t, err, `-p 80-82/tcp: invalid port spec "80-82/tcp": no free tcp host port in the ephemeral range 40000-40001 on 0.0.0.0`)
}

func TestResolveUnpublish(t *testing.T) {
	existing := []Published{
		pub("a", 10, "0.0.0.0:8080->172.18.0.2:80/tcp"),
		pub("a", 11, "0.0.0.0:32768->172.18.0.2:80/tcp"),
		pub("a", 12, "127.0.0.1:32768->172.18.0.2:80/tcp"),
		pub("a", 13, "0.0.0.0:9000->172.18.0.2:9000/udp"),
		pub("a", 14, "0.0.0.0:9001->172.18.0.2:9001/udp"),
		pub("b", 15, "8000->172.19.0.2:80/tcp"),
	}
	x := NewIndex(existing)
	for _, tc := range []struct {
		name  string
		n     chains.Network
		c     string
		specs []string
		want  string
	}{
		{"every host port of the container port", netA, "172.18.0.2", []string{"80"},
			"0.0.0.0:8080->172.18.0.2:80/tcp 0.0.0.0:32768->172.18.0.2:80/tcp"},
		{"host range", netA, "172.18.0.2", []string{"32768-40000:80"}, "0.0.0.0:32768->172.18.0.2:80/tcp"},
		{"host address", netA, "172.18.0.2", []string{"127.0.0.1::80"}, "127.0.0.1:32768->172.18.0.2:80/tcp"},
		{"exact range", netA, "172.18.0.2", []string{"9000-9001:9000-9001/udp"},
			"0.0.0.0:9000->172.18.0.2:9000/udp 0.0.0.0:9001->172.18.0.2:9001/udp"},
		{"default address", netB, "172.19.0.2", []string{"80"}, "192.0.2.1:8000->172.19.0.2:80/tcp"},
		{"nothing there", netA, "172.18.0.2", []string{"81"}, `error: 172.18.0.2:81/tcp is not published on network "a" from any host port on 0.0.0.0`},
		{"not in range", netA, "172.18.0.2", []string{"1-100:80"}, `error: from a host port in 1-100`},
		{"exact but absent", netA, "172.18.0.2", []string{"9002:9002/udp"}, `error: not published on network "a"`},
		{"twice", netA, "172.18.0.2", []string{"80", "8080:80"}, "error: listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := x.ResolveUnpublish(d6, tc.n, ip(tc.c), specs(t, tc.specs...))
			if err == nil {
				got, err = x.CheckUnpublish(d6, tc.n, got)
			}
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				require.ErrorContains(t, err, want)
				var fe *chains.FieldError
				require.True(t, errors.As(err, &fe))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, strings.Join(strs(got), " "))
		})
	}
}

// TestIndex: Add and Remove keep every view of the index consistent, and
// the shared elements follow the bindings that need them.
func TestIndex(t *testing.T) {
	a := pub("a", 10, "8080->172.18.0.2:80/tcp")
	b := pub("a", 11, "127.0.0.1:8082->172.18.0.2:80/tcp")
	c := pub("b", 12, "8081->172.19.0.2:80/udp")
	x := NewIndex([]Published{a, c})
	require.Equal(t, 2, x.Len())
	x.Add("a", []Binding{b.Binding}, 11)
	x.Add("a", []Binding{b.Binding}, 99) // a duplicate is ignored
	require.Equal(t, 3, x.Len())
	require.Equal(t, []Published{a, b, c}, x.All())
	require.Equal(t, []Published{a, b}, x.Network("a"))
	require.Equal(t, 2, x.sharing("a", a.Binding))
	got, ok := x.Lookup("a", b.Binding)
	require.True(t, ok)
	require.Equal(t, b, got)

	h, ok := x.PortHolder(UDP, 8081)
	require.True(t, ok)
	require.Equal(t, c, h)
	h, ok = x.PortHolder(TCP, 8082)
	require.True(t, ok, "a specific address holds the port too")
	require.Equal(t, b, h)
	_, ok = x.PortHolder(UDP, 8080)
	require.False(t, ok)

	// Unpublishing one of the two keeps the shared elements: it deletes
	// dnat-host, dnat-skip-host, loopback-ports and the two counts, and
	// adds the container port's count back as 1; iptables' -D removed a's
	// hairpin (the first that matches), a's stays where b's was.
	tx := &nft.Tx{}
	x.Unpublish(tx, d4, netA, []Binding{b.Binding})
	require.Equal(t, 7, tx.Len())

	x.Remove("a", []Binding{b.Binding})
	x.Remove("a", []Binding{b.Binding}) // absent: no change
	require.Equal(t, 2, x.Len())
	require.Equal(t, 1, x.sharing("a", a.Binding))
	_, ok = x.Lookup("a", b.Binding)
	require.False(t, ok)
	_, clashes := x.clashWith(b.Binding)
	require.False(t, clashes, "127.0.0.1:8082 is free again")
	b2 := b.Binding
	b2.HostPort = 8080
	_, clashes = x.clashWith(b2)
	require.True(t, clashes, "8080 on all addresses stays")

	x.Remove("a", []Binding{a.Binding})
	x.Remove("b", []Binding{c.Binding})
	require.Equal(t, 0, x.Len())
	require.Empty(t, x.All())
	require.Empty(t, x.claims)
	require.Empty(t, x.targets)
	require.Empty(t, x.byNet)
	for _, bits := range x.taken {
		require.Equal(t, portBits{}, *bits, "no port left marked")
	}
	for _, bits := range x.hosts {
		require.Equal(t, portBits{}, *bits, "no port left marked")
	}
}

func TestPortBits(t *testing.T) {
	var p, q portBits
	for port := 32768; port < 32768+130; port++ {
		p.set(uint16(port), true)
	}
	next, ok := nextClear(32768, &p)
	require.True(t, ok)
	require.Equal(t, uint16(32768+130), next)
	next, _ = nextClear(1, &p)
	require.Equal(t, uint16(1), next)
	next, _ = nextClear(1, nil, nil)
	require.Equal(t, uint16(1), next)
	p.set(32800, false)
	next, _ = nextClear(32769, &p)
	require.Equal(t, uint16(32800), next)
	q.set(32800, true)
	next, _ = nextClear(32769, &p, nil, &q)
	require.Equal(t, uint16(32768+130), next, "either set marks a port taken")
	for port := 65472; port <= 65535; port++ {
		p.set(uint16(port), true)
	}
	_, ok = nextClear(65500, &p)
	require.False(t, ok)
}

// TestIndexRandom: after random publishes and unpublishes, the index
// answers what a scan of all bindings answers: which binding a host
// address and port clashes with, and the lowest free port of a range.
func TestIndexRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	hosts := []netip.Addr{ip("0.0.0.0"), ip("127.0.0.1"), ip("192.0.2.1"), ip("::"), ip("::1")}
	protos := []Proto{TCP, UDP}
	random := func() Binding {
		h := hosts[rnd.IntN(len(hosts))]
		c := ip("172.18.0.2")
		if !h.Is4() {
			c = ip("fd00:18::2")
		}
		return Binding{Proto: protos[rnd.IntN(2)], HostIP: h, HostPort: 40000 + uint16(rnd.IntN(40)), ContainerIP: c, ContainerPort: uint16(1 + rnd.IntN(3))}
	}
	x := NewIndex(nil)
	var all []Binding
	for range 3000 {
		if b := random(); rnd.IntN(3) > 0 {
			if _, err := x.CheckPublish(d6, netA, []Binding{b}); err == nil {
				x.Add("a", []Binding{b}, 1)
				all = append(all, b)
			}
		} else if len(all) > 0 {
			i := rnd.IntN(len(all))
			x.Remove("a", []Binding{all[i]})
			all = append(all[:i], all[i+1:]...)
		}
		require.Equal(t, len(all), x.Len())

		probe := random()
		_, got := x.clashWith(probe)
		want := slices.ContainsFunc(all, func(o Binding) bool { return clash(probe, o) })
		require.Equal(t, want, got, "clash of %s", probe)

		r := PortRange{40000, 40039}
		port, ok := x.lowestFree(probe, r, claims{}, nil)
		wantPort, wantOK := uint16(0), false
		for p := r.Start; p <= r.End; p++ {
			probe.HostPort = p
			if !slices.ContainsFunc(all, func(o Binding) bool { return clash(probe, o) }) {
				wantPort, wantOK = p, true
				break
			}
		}
		require.Equal(t, wantOK, ok)
		require.Equal(t, wantPort, port, "lowest free port for %s", probe)
	}
}

// TestResolveMany: thousands of allocations in one request take
// consecutive free ports, skipping the taken ones, and a request for more
// ports than the range holds is refused naming the spec (the search for
// each port starts after the previous one's: see BenchmarkResolveMany).
func TestResolveMany(t *testing.T) {
	x := NewIndex(published(100, EphemeralPorts.Start+10)) // 32778-32877 taken
	got, err := x.Resolve(d4, netA, ip("172.18.0.2"), specs(t, "1-4000"), nil)
	require.NoError(t, err)
	require.Len(t, got, 4000)
	want := EphemeralPorts.Start
	for i, b := range got {
		if want == EphemeralPorts.Start+10 {
			want += 100
		}
		require.Equal(t, want, b.HostPort, "binding %d", i)
		require.Equal(t, uint16(1+i), b.ContainerPort)
		want++
	}
	_, err = x.Resolve(d4, netA, ip("172.18.0.2"), specs(t, "1-65535"), nil)
	require.ErrorContains(t, err, "no free tcp host port in the ephemeral range 32768-60999")
	require.ErrorContains(t, err, "-p 1-65535")
}

// BenchmarkResolveMany: one request for thousands of ports (each search
// starts where the previous one ended), and one for more ports than the
// ephemeral range has.
func BenchmarkResolveMany(b *testing.B) {
	x := NewIndex(published(10000, EphemeralPorts.Start))
	for _, s := range []string{"1-4000", "1-65535"} {
		sp := specs(b, s)
		b.Run(s, func(b *testing.B) {
			for range b.N {
				_, _ = x.Resolve(d4, netA, ip("172.18.0.2"), sp, nil)
			}
		})
	}
}
