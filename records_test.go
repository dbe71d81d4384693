package dnft

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// recordsState is the state of the records tests: two networks, three
// bindings (two sharing a container port), two ingress ports.
func recordsState() State {
	d := DaemonConfig{UserlandProxy: true}
	return State{
		Daemon: &d,
		Networks: []Network{
			{NetworkConfig: NetworkConfig{Name: "a", Bridge: "br-a", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), ICC: true, Masquerade: true}, Seq: 10},
			{NetworkConfig: NetworkConfig{Name: "b", Bridge: "br-b", Subnet4: netip.MustParsePrefix("172.19.0.0/16"), ICC: false, Masquerade: true}, Seq: 11},
		},
		Ports: []Published{
			{Network: "a", Binding: Binding{Proto: portmap.TCP, HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerIP: netip.MustParseAddr("172.18.0.2"), ContainerPort: 80}, Seq: 12},
			{Network: "a", Binding: Binding{Proto: portmap.TCP, HostIP: netip.IPv4Unspecified(), HostPort: 8081, ContainerIP: netip.MustParseAddr("172.18.0.2"), ContainerPort: 80}, Seq: 13},
			{Network: "b", Binding: Binding{Proto: portmap.UDP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9000, ContainerIP: netip.MustParseAddr("172.19.0.5"), ContainerPort: 90}, Seq: 14},
			{Network: "a", Binding: Binding{Proto: portmap.TCP, HostIP: netip.IPv4Unspecified(), HostPort: 8082, ContainerIP: netip.MustParseAddr("172.18.0.3"), ContainerPort: 80}, Seq: 17},
		},
		Ingress: []IngressPublished{
			{Port: IngressPort{GwBridge: "docker_gwbridge", Proto: portmap.TCP, Port: 30000, Target: netip.MustParseAddr("172.30.0.2")}, Refs: 2, Seq: 15},
			{Port: IngressPort{GwBridge: "docker_gwbridge", Proto: portmap.UDP, Port: 30001, Target: netip.MustParseAddr("172.30.0.2")}, Refs: 1, Seq: 16},
		},
	}
}

// programmedTables is what a state programs, as the kernel would list it.
func programmedTables(t *testing.T, s State) []nft.TableState {
	t.Helper()
	tx, err := build(context.Background(), s)
	require.NoError(t, err)
	objs, err := tx.Objects(nil)
	require.NoError(t, err)
	return objs
}

// set returns a set of the IPv4 table.
func set(t *testing.T, ts []nft.TableState, name string) *nft.SetState {
	t.Helper()
	s := findTable(ts, nft.IPv4).Set(name)
	require.NotNil(t, s, name)
	return s
}

// key encodes an element key of a set spec.
func key(t *testing.T, s nft.Set, vals ...nft.Value) []byte {
	t.Helper()
	k, err := nft.EncodeKey(nft.IPv4, s.Key, vals)
	require.NoError(t, err)
	return k
}

func deleteElem(s *nft.SetState, k []byte) {
	s.Elements = slices.DeleteFunc(s.Elements, func(e nft.ElementState) bool { return string(e.Key) == string(k) })
}

func elem(t *testing.T, s *nft.SetState, k []byte) *nft.ElementState {
	t.Helper()
	for i := range s.Elements {
		if string(s.Elements[i].Key) == string(k) {
			return &s.Elements[i]
		}
	}
	t.Fatalf("set %s has no element %x", s.Name, k)
	return nil
}

func target(t *testing.T, a string, port uint16) []byte {
	t.Helper()
	b, err := nft.EncodeKey(nft.IPv4, []nft.Field{nft.FieldDaddr, nft.FieldDport}, []nft.Value{nft.Addr(netip.MustParseAddr(a)), nft.Port(port)})
	require.NoError(t, err)
	return b
}

// TestRecordsOf: after any one edit of dnft's records, the records still
// tell the state (or say that they cannot): a binding, network or
// ingress port whose record survives anywhere is kept, a forged record
// is left out, an invalid record is a finding.
func TestRecordsOf(t *testing.T) {
	base := recordsState()
	any := portmap.DNATAnyMap(nft.IPv4)
	tcp, udp := nft.Proto(6), nft.Proto(17)
	dnatKey := func(t *testing.T, port uint16) []byte { return key(t, any, tcp, nft.Port(port)) }
	ifname := func(t *testing.T, name string) []byte { return key(t, chains.NetworksSet(), nft.Ifname(name)) }
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, ts []nft.TableState)
		// finding is part of a finding that must be reported ("" none);
		// unknown whether the records cannot tell.
		finding string
		unknown bool
		// want edits the state expected (default: the state as
		// programmed).
		want func(State) State
	}{
		{name: "intact", edit: func(*testing.T, []nft.TableState) {}},
		{name: "delete a DNAT element", edit: func(t *testing.T, ts []nft.TableState) {
			deleteElem(set(t, ts, portmap.MapDNATAny), dnatKey(t, 8080))
		}},
		{name: "flush the DNAT map", edit: func(t *testing.T, ts []nft.TableState) {
			set(t, ts, portmap.MapDNATAny).Elements = nil
			set(t, ts, portmap.MapDNATHost).Elements = nil
		}},
		{name: "flush the skip sets", edit: func(t *testing.T, ts []nft.TableState) {
			set(t, ts, portmap.SetDNATSkipAny).Elements = nil
			set(t, ts, portmap.SetDNATSkipHost).Elements = nil
		}},
		{name: "delete a network element", edit: func(t *testing.T, ts []nft.TableState) {
			deleteElem(set(t, ts, chains.SetNetworks), ifname(t, "br-a"))
		}},
		{name: "flush the networks set", edit: func(t *testing.T, ts []nft.TableState) {
			set(t, ts, chains.SetNetworks).Elements = nil
		}},
		{name: "flush the forward-out map", edit: func(t *testing.T, ts []nft.TableState) {
			set(t, ts, chains.MapForwardOut).Elements = nil
		}},
		{name: "forge a DNAT element to an unpublished port", edit: func(t *testing.T, ts []nft.TableState) {
			s := set(t, ts, portmap.MapDNATAny)
			s.Elements = append(s.Elements, nft.ElementState{Key: dnatKey(t, 9090), Data: target(t, "172.18.0.2", 81), Comment: "dnft1;net=a;q=1"})
		}},
		{name: "forge a network record", edit: func(t *testing.T, ts []nft.TableState) {
			s := set(t, ts, chains.SetNetworks)
			s.Elements = append(s.Elements, nft.ElementState{Key: ifname(t, "br-x"), Comment: "dnft1;n=x;s4=10.9.0.0/24;f=011;q=1"})
		}},
		{name: "change a DNAT target out of the subnet", edit: func(t *testing.T, ts []nft.TableState) {
			elem(t, set(t, ts, portmap.MapDNATAny), dnatKey(t, 8080)).Data = target(t, "10.99.0.5", 80)
		}, finding: "not in network \"a\"'s subnet"},
		{name: "change a DNAT target to an unpublished container", edit: func(t *testing.T, ts []nft.TableState) {
			elem(t, set(t, ts, portmap.MapDNATAny), dnatKey(t, 8080)).Data = target(t, "172.18.0.4", 80)
		}},
		{name: "change a DNAT target to another published container", edit: func(t *testing.T, ts []nft.TableState) {
			// Both copies of 8080's record are valid and name a published
			// container port: nothing tells which is right.
			elem(t, set(t, ts, portmap.MapDNATAny), dnatKey(t, 8080)).Data = target(t, "172.18.0.3", 80)
		}, finding: "its two records differ", unknown: true},
		{name: "network record with every address", edit: func(t *testing.T, ts []nft.TableState) {
			e := elem(t, set(t, ts, chains.SetNetworks), ifname(t, "br-a"))
			e.Comment = strings.Replace(e.Comment, "172.18.0.0/16", "0.0.0.0/0", 1)
		}, finding: "0.0.0.0/8"},
		{name: "network record without subnet", edit: func(t *testing.T, ts []nft.TableState) {
			e := elem(t, set(t, ts, chains.MapForwardOut), ifname(t, "br-b"))
			e.Comment = strings.Replace(e.Comment, ";s4=172.19.0.0/16", "", 1)
		}, finding: "no s4"},
		{name: "network name with control characters", edit: func(t *testing.T, ts []nft.TableState) {
			e := elem(t, set(t, ts, chains.SetNetworks), ifname(t, "br-a"))
			e.Comment = strings.Replace(e.Comment, "n=a", "n=a\x1b[2J", 1)
		}, finding: "must be 1-64 characters"},
		{name: "duplicate network name, both copies", edit: func(t *testing.T, ts []nft.TableState) {
			// Two edits: nothing valid is left of network b, which goes
			// with its binding.
			for _, name := range []string{chains.SetNetworks, chains.MapForwardOut} {
				e := elem(t, set(t, ts, name), ifname(t, "br-b"))
				e.Comment = strings.Replace(e.Comment, "n=b", "n=a", 1)
			}
		}, finding: "a network with this name exists", want: func(s State) State {
			s.Networks = s.Networks[:1]
			s.Ports = slices.DeleteFunc(slices.Clone(s.Ports), func(p Published) bool { return p.Network == "b" })
			return s
		}},
		{name: "duplicate network name, one copy", edit: func(t *testing.T, ts []nft.TableState) {
			e := elem(t, set(t, ts, chains.SetNetworks), ifname(t, "br-b"))
			e.Comment = strings.Replace(e.Comment, "n=b", "n=a", 1)
		}, finding: "its record differs", unknown: true},
		{name: "daemon records differ", edit: func(t *testing.T, ts []nft.TableState) {
			elem(t, set(t, ts, chains.MapForwardOut), ifname(t, chains.DaemonKey)).Comment = "dnft1;proxy=0;ipv6=0;adr=0"
		}, finding: "differs", unknown: true},
		{name: "delete an ingress DNAT element", edit: func(t *testing.T, ts []nft.TableState) {
			deleteElem(set(t, ts, ingress.MapDNAT), key(t, ingress.DNATMap(nft.IPv4), tcp, nft.Port(30000)))
		}},
		{name: "flush the ingress ports", edit: func(t *testing.T, ts []nft.TableState) {
			set(t, ts, ingress.SetPorts).Elements = nil
		}},
		{name: "forge an ingress DNAT element", edit: func(t *testing.T, ts []nft.TableState) {
			s := set(t, ts, ingress.MapDNAT)
			s.Elements = append(s.Elements, nft.ElementState{Key: key(t, ingress.DNATMap(nft.IPv4), udp, nft.Port(30005)), Data: target(t, "172.30.0.9", 30005), Comment: "dnft1;gw=docker_gwbridge;n=1;q=1"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := programmedTables(t, base)
			tc.edit(t, ts)
			rt := recordsOf(ts)
			var found []string
			for _, f := range rt.findings {
				found = append(found, f.String())
			}
			if tc.finding == "" {
				require.Empty(t, found)
			} else {
				require.Contains(t, strings.Join(found, "\n"), tc.finding)
			}
			if tc.unknown {
				require.ErrorIs(t, rt.unknown, ErrStateUnknown)
				return
			}
			require.NoError(t, rt.unknown)
			want := recordsState()
			if tc.want != nil {
				want = tc.want(want)
			}
			require.Equal(t, want, rt.state)
		})
	}
}

// TestSetLayoutRecords: changing what the daemon record holds (the
// view's layout) changes both of its copies.
func TestSetLayoutRecords(t *testing.T) {
	ns := harness.Scratch(t)
	ctx := context.Background()
	fw, err := Open(ctx, ns.Path())
	require.NoError(t, err)
	defer fw.Close()
	require.NoError(t, fw.Init(ctx, DaemonConfig{UserlandProxy: true, IPForward: true}))
	require.NoError(t, fw.SetLayout(ctx, "stages"))
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)
	d, ok, err := fw.Daemon(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "stages", d.Layout)
}
