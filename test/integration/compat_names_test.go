package integration_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// servePTR runs a DNS server on 127.0.0.1:53 in a namespace until the
// test ends: PTR questions for the addresses of names are answered,
// every other question is NXDOMAIN.
func servePTR(t *testing.T, ns *harness.NS, names map[netip.Addr]string) {
	t.Helper()
	var pc net.PacketConn
	require.NoError(t, ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:53")
		return err
	}))
	t.Cleanup(func() { pc.Close() })
	byName := map[string]string{}
	for a, n := range names {
		o := a.As4()
		byName[fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", o[3], o[2], o[1], o[0])] = n
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.Header.ID, Response: true, RecursionDesired: true, RecursionAvailable: true},
				Questions: m.Questions}
			if host, ok := byName[q.Name.String()]; ok && q.Type == dnsmessage.TypePTR {
				resp.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: 60},
					Body:   &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(host + ".")},
				}}
			} else {
				resp.Header.RCode = dnsmessage.RCodeNameError
			}
			if b, err := resp.Pack(); err == nil {
				_, _ = pc.WriteTo(b, from)
			}
		}
	}()
}

// inMountNS runs a command in a namespace with its own nsswitch.conf and
// resolv.conf bind-mounted over /etc's in a private mount namespace (the
// host's files are not touched).
func inMountNS(ctx context.Context, ns, nsswitch, resolv string, args ...string) cvResult {
	return cvExec(ctx, ns, append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /etc/nsswitch.conf && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`,
		nsswitch, resolv}, args...)...)
}

// TestCompatNames is item 1 of issue #15: the view names addresses
// exactly as real iptables does in the same namespace with the same
// nsswitch.conf and resolv.conf: hosts from /etc/hosts, DNS PTR answers
// asked from the namespace, /etc/networks only when the lookup failed
// (a resolver that cannot be reached: loopback/8), numeric when the name
// is merely unknown, and "hosts: files" never asking DNS.
func TestCompatNames(t *testing.T) {
	harness.RequireRoot(t, "unshare")
	ctx := cvContext(t)
	d := dnft.DaemonConfig{UserlandProxy: true, IPForward: true}
	dnNS, refNS := harness.Scratch(t), harness.Scratch(t)
	fw := openFirewall(ctx, t, dnNS)
	require.NoError(t, fw.Init(ctx, d))
	ref, err := reference.New(ctx, refNS.Name, d)
	require.NoError(t, err)
	nw := dnft.NetworkConfig{Name: "n1", Bridge: "br1", Subnet4: pfx("172.18.0.0/16"), ICC: true, Masquerade: true}
	require.NoError(t, fw.CreateNetwork(ctx, nw))
	require.NoError(t, ref.CreateNetwork(ctx, nw))
	binds := []portmap.Binding{reference.Bind(tcp, "", 8080, "172.18.0.5", 80)}
	require.NoError(t, fw.Publish(ctx, "n1", binds))
	require.NoError(t, ref.Publish(ctx, "n1", binds))
	// A DNS server in each namespace that knows two of the addresses.
	for _, ns := range []*harness.NS{dnNS, refNS} {
		servePTR(t, ns, map[netip.Addr]string{ip("172.18.0.0"): "net18.example", ip("172.18.0.5"): "web.example"})
	}
	dnftBin := dnftBinary(t)
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	for _, tc := range []struct {
		name, hosts, resolv, want string
	}{
		{"files dns, unreachable resolver", "hosts: files dns", "nameserver 192.0.2.53\n", "!loopback/8"},
		{"files only", "hosts: files", "nameserver 192.0.2.53\n", "!127.0.0.0/8"},
		{"files dns, answering resolver", "hosts: files dns", "nameserver 127.0.0.1\n", "web.example"},
		{"dns only, answering resolver", "hosts: dns", "nameserver 127.0.0.1\n", "net18.example/16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nsswitch := file(strings.ReplaceAll(tc.name, " ", "_")+".nsswitch", tc.hosts+"\nnetworks: files\nservices: files\nprotocols: files\n")
			resolv := file(strings.ReplaceAll(tc.name, " ", "_")+".resolv", tc.resolv)
			var all string
			for _, args := range [][]string{{"-t", "nat", "-L"}, {"-L"}, {"-t", "raw", "-L"}, {"-t", "nat", "-S"}} {
				want := inMountNS(ctx, refNS.Name, nsswitch, resolv, append([]string{"iptables"}, args...)...)
				got := inMountNS(ctx, dnNS.Name, nsswitch, resolv, append([]string{dnftBin, "iptables"}, args...)...)
				cvCompare(t, tc.name+": iptables "+strings.Join(args, " "), got, want)
				all += got.stdout
			}
			require.Contains(t, all, tc.want)
		})
	}
}
