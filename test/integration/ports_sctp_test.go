package integration_test

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const ipprotoSCTP = 132

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sctpInit builds an SCTP packet holding one INIT chunk (RFC 9260 3.1,
// 3.3.2): the 12-byte common header with verification tag 0, then the
// 20-byte chunk. The checksum is CRC32c over the packet with the checksum
// field zero, stored as Linux does (little-endian).
func sctpInit(src, dst uint16, tag uint32) []byte {
	p := make([]byte, 32)
	binary.BigEndian.PutUint16(p[0:], src)
	binary.BigEndian.PutUint16(p[2:], dst)
	p[12] = 1                                 // chunk type INIT
	binary.BigEndian.PutUint16(p[14:], 20)    // chunk length
	binary.BigEndian.PutUint32(p[16:], tag)   // initiate tag
	binary.BigEndian.PutUint32(p[20:], 65536) // a_rwnd
	binary.BigEndian.PutUint16(p[24:], 1)     // outbound streams
	binary.BigEndian.PutUint16(p[26:], 1)     // inbound streams
	binary.BigEndian.PutUint32(p[28:], tag)   // initial TSN
	binary.LittleEndian.PutUint32(p[8:], crc32.Checksum(p, castagnoli))
	return p
}

// sctpChecksumOK checks the CRC32c of a received SCTP packet.
func sctpChecksumOK(p []byte) bool {
	if len(p) < 12 {
		return false
	}
	q := append([]byte(nil), p...)
	want := binary.LittleEndian.Uint32(q[8:])
	binary.LittleEndian.PutUint32(q[8:], 0)
	return crc32.Checksum(q, castagnoli) == want
}

// rawSCTP opens a raw IPv4 socket for protocol SCTP in the namespace. It
// receives every SCTP packet addressed to the namespace, IP header
// included.
func rawSCTP(t *testing.T, ns *harness.NS) int {
	t.Helper()
	var fd int
	require.NoError(t, ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, ipprotoSCTP)
		return err
	}))
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	require.NoError(t, unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	return fd
}

func sendSCTP(t *testing.T, fd int, to netip.Addr, pkt []byte) {
	t.Helper()
	require.NoError(t, unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: to.As4()}))
}

// sctpSeen is one SCTP packet a raw socket received.
type sctpSeen struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
	checksumOK       bool
}

// packetWait bounds the wait for a packet that must arrive.
const packetWait = 30 * time.Second

// recvSCTPUntil returns the SCTP packets the raw socket receives, in
// order, up to and including the first one from source port last,
// waiting up to packetWait for it; ok says whether it came. A packet that
// was sent earlier through the same path is in the list if it arrived at
// all, so the list also shows what did not arrive.
func recvSCTPUntil(fd int, last uint16) (out []sctpSeen, ok bool) {
	buf := make([]byte, 2048)
	for end := time.Now().Add(packetWait); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // EAGAIN after SO_RCVTIMEO
		}
		p := buf[:n]
		ihl := int(p[0]&0xf) * 4
		if n < ihl+12 {
			continue
		}
		s := p[ihl:]
		seen := sctpSeen{
			src:        netip.AddrFrom4([4]byte(p[12:16])),
			dst:        netip.AddrFrom4([4]byte(p[16:20])),
			srcPort:    binary.BigEndian.Uint16(s[0:]),
			dstPort:    binary.BigEndian.Uint16(s[2:]),
			checksumOK: sctpChecksumOK(s),
		}
		out = append(out, seen)
		if seen.srcPort == last {
			return out, true
		}
	}
	return out, false
}

// elementPackets reads the packet counter of one element of a set or map
// (kind "set" or "map") of the dnft ip table, given the element's key as
// nft prints it.
func elementPackets(t *testing.T, topo *harness.Topology, kind, set, key string) uint64 {
	t.Helper()
	out, err := topo.Host.Run(testContext(t), "nft", "list", kind, "ip", "dnft", set)
	require.NoError(t, err, out)
	m := regexp.MustCompile(regexp.QuoteMeta(key) + ` counter packets (\d+) bytes`).FindStringSubmatch(out)
	require.NotNil(t, m, "no element %q in set %s:\n%s", key, set, out)
	n, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	return n
}

// TestSCTP: the harness has no SCTP sockets, so SCTP publishing is
// checked with crafted INIT packets sent from the LAN with a raw socket:
// one sent before publishing never reaches the container; after
// publishing 9999/sctp to the container's 5000, each INIT to the host's
// port is DNATed (the container's raw socket sees it for its address and port
// 5000, with a valid checksum) and counted by the binding's dnat-any and
// published elements; the iptables reference delivers the same packets.
func TestSCTP(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenario{
		name:       "sctp",
		daemon:     dnft.DaemonConfig{UserlandProxy: true},
		nets:       []netSpec{bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16")},
		containers: []harness.ContainerSpec{ctr("c1", "br-a", "172.18.0.2")},
	}
	dn, ref := harness.NewTwin(t, sc.spec())
	bridgeNFOff(t, dn) // dnft must not depend on it (issue #12)
	fw := programDNFT(ctx, t, sc, dn)
	p := programReference(ctx, t, sc, ref)
	spec, err := dnft.ParsePortSpec("9999:5000/sctp")
	require.NoError(t, err)
	b := reference.Bind(portmap.SCTP, "", 9999, "172.18.0.2", 5000)
	c1 := ip("172.18.0.2")
	want := b
	want.HostIP = ip("0.0.0.0")

	for i, tc := range []struct {
		name    string
		topo    *harness.Topology
		publish func() error
	}{
		{"dnft", dn, func() error {
			got, err := fw.PublishSpecs(ctx, "a", c1, []dnft.PortSpec{spec})
			if err == nil && (len(got) != 1 || got[0] != want) {
				err = fmt.Errorf("published %v", got)
			}
			return err
		}},
		{"reference", ref, func() error { return p.Publish(ctx, "a", []portmap.Binding{b}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lan := rawSCTP(t, tc.topo.LAN)
			ctrSock := rawSCTP(t, tc.topo.Containers["c1"])
			srcPort := uint16(41000 + i)

			// Before publishing, nothing DNATs the INIT.
			sendSCTP(t, lan, harness.LANHostAddr4, sctpInit(srcPort, 9999, 0x1234567))

			require.NoError(t, tc.publish())
			var dnat, pub uint64
			if tc.name == "dnft" {
				dnat = elementPackets(t, tc.topo, "map", portmap.MapDNATAny, "sctp . 9999")
				pub = elementPackets(t, tc.topo, "set", "published", "172.18.0.2 . sctp . 5000")
			}
			// New associations (other source ports; conntrack's entry of the
			// first INIT has no DNAT): each reaches the container once, and
			// the first INIT never did, since the raw socket would have
			// queued it before them.
			second, third := srcPort+100, srcPort+200
			sendSCTP(t, lan, harness.LANHostAddr4, sctpInit(second, 9999, 0x7654321))
			sendSCTP(t, lan, harness.LANHostAddr4, sctpInit(third, 9999, 0x7654322))
			seen, ok := recvSCTPUntil(ctrSock, third)
			require.True(t, ok, "the INITs did not reach the container; seen: %v", seen)
			require.Equal(t, []sctpSeen{
				{src: harness.LANAddr4, dst: c1, srcPort: second, dstPort: 5000, checksumOK: true},
				{src: harness.LANAddr4, dst: c1, srcPort: third, dstPort: 5000, checksumOK: true},
			}, seen, "the INITs sent after publishing, once each, and nothing before")

			if tc.name == "dnft" {
				require.Equal(t, dnat+2, elementPackets(t, tc.topo, "map", portmap.MapDNATAny, "sctp . 9999"), "dnat-any element counter")
				require.Equal(t, pub+2, elementPackets(t, tc.topo, "set", "published", "172.18.0.2 . sctp . 5000"), "published element counter")
				ports, err := fw.Ports(ctx)
				require.NoError(t, err)
				require.Len(t, ports, 1)
				require.Equal(t, dnat+2, ports[0].Packets, "Ports reports the DNAT counter")
			}
		})
	}
}
