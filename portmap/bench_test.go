package portmap

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/dnft/dnft/nft"
)

// published returns n bindings of network a: 172.18.(i/250).(i%250+2),
// host port base+i on all addresses.
func published(n int, base uint16) []Published {
	out := make([]Published, n)
	for i := range out {
		c := netip.AddrFrom4([4]byte{172, 18, byte(i / 250), byte(i%250 + 2)})
		out[i] = Published{Network: "a", Seq: int64(i), Binding: Binding{Proto: TCP, HostIP: netip.IPv4Unspecified(),
			HostPort: base + uint16(i), ContainerIP: c, ContainerPort: 80}}
	}
	return out
}

// BenchmarkCheckAndQueue: checking and queuing one binding against n
// published ones, with a kept Index and, for comparison, with the
// slice-based functions that index the slice on every call.
func BenchmarkCheckAndQueue(b *testing.B) {
	one := []Binding{{Proto: TCP, HostPort: 8080, ContainerIP: netip.MustParseAddr("172.18.255.2"), ContainerPort: 80}}
	for _, n := range []int{0, 1000, 10000} {
		existing := published(n, 10000)
		x := NewIndex(existing)
		b.Run(fmt.Sprintf("index/bindings=%d", n), func(b *testing.B) {
			for range b.N {
				norm, err := x.CheckPublish(d4, netA, one)
				if err != nil {
					b.Fatal(err)
				}
				x.Publish(&nft.Tx{}, d4, netA, norm, 1)
			}
		})
		b.Run(fmt.Sprintf("slice/bindings=%d", n), func(b *testing.B) {
			for range b.N {
				norm, err := CheckPublish(d4, netA, one, existing)
				if err != nil {
					b.Fatal(err)
				}
				Publish(&nft.Tx{}, d4, netA, norm, 1, existing)
			}
		})
	}
}

// BenchmarkResolveEphemeral: allocating a port when the n lowest ports
// of the ephemeral range are taken.
func BenchmarkResolveEphemeral(b *testing.B) {
	sp := []Spec{{ContainerPorts: PortRange{80, 80}, Proto: TCP}}
	c := netip.MustParseAddr("172.18.255.2")
	for _, n := range []int{0, 10000, 28231} {
		x := NewIndex(published(n, EphemeralPorts.Start))
		for _, host := range []string{"0.0.0.0", "127.0.0.1"} {
			sp[0].HostIP = netip.MustParseAddr(host)
			b.Run(fmt.Sprintf("taken=%d/host=%s", n, host), func(b *testing.B) {
				for range b.N {
					bs, err := x.Resolve(d4, netA, c, sp, nil)
					if err != nil {
						b.Fatal(err)
					}
					if want := EphemeralPorts.Start + uint16(n); bs[0].HostPort != want {
						b.Fatalf("got port %d, want %d", bs[0].HostPort, want)
					}
				}
			})
		}
	}
}
