package dnft

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dnft/dnft/nft"
	"github.com/stretchr/testify/require"
)

const sampleDoc = `{
  "version": 1,
  "daemon": {"userland_proxy": true, "ipv6": true, "allow_direct_routing": false},
  "networks": [
    {"name": "a", "bridge": "br-a", "subnets": ["172.18.0.0/16", "fd00:18::/64"], "seq": 10},
    {"name": "b", "bridge": "br-b", "subnets": ["172.19.0.0/16"], "icc": false, "host_binding_ipv4": "192.0.2.1", "seq": 11}
  ],
  "ports": [
    {"network": "a", "proto": "tcp", "host_port": 8080, "container_ip": "172.18.0.2", "container_port": 80, "seq": 12},
    {"network": "b", "host_port": 8081, "container_ip": "172.19.0.2", "container_port": 80}
  ],
  "ingress": [
    {"proto": "udp", "port": 30000, "target": "172.30.0.2", "refs": 2, "seq": 13}
  ],
  "docker_user": []
}`

func TestParseStateDefaults(t *testing.T) {
	s, err := ParseState([]byte(sampleDoc))
	require.NoError(t, err)
	require.True(t, s.Daemon.UserlandProxy)
	require.Len(t, s.Networks, 2)
	require.True(t, s.Networks[0].ICC && s.Networks[0].Masquerade, "icc and masquerade default to true")
	require.False(t, s.Networks[1].ICC)
	require.Equal(t, "192.0.2.1:8081->172.19.0.2:80/tcp", s.Ports[1].String(), "host address from the network's default")
	require.Zero(t, s.Ports[1].Seq, "no seq: assigned when programmed")
	require.Equal(t, "docker_gwbridge", s.Ingress[0].GwBridge)
	require.NotNil(t, s.DockerUser, "an empty list is part of the state")

	doc, err := s.Encode()
	require.NoError(t, err)
	again, err := ParseState(doc)
	require.NoError(t, err)
	doc2, err := again.Encode()
	require.NoError(t, err)
	require.Equal(t, string(doc), string(doc2))

	noUser, err := ParseState([]byte(strings.Replace(sampleDoc, `"docker_user": []`, `"docker_user": null`, 1)))
	require.NoError(t, err)
	require.Nil(t, noUser.DockerUser, "null or absent: DOCKER-USER is not part of the state")
}

// TestParseStateErrors: every bad document is refused with a FieldError
// that names the field by its path.
// TestParseStateHistory: the history of the iptables view (positions of
// bindings' rules, ingress gateways') goes through the document.
func TestParseStateHistory(t *testing.T) {
	doc := strings.Replace(sampleDoc, `"container_port": 80, "seq": 12}`, `"container_port": 80, "seq": 12, "filter_seq": 3, "hairpin_seq": 20}`, 1)
	doc = strings.Replace(doc, `"docker_user": []`, `"ingress_history": [{"family": "ip", "bridge": "docker_gwbridge", "masquerade_seq": 5, "chains_seq": 4}], "docker_user": []`, 1)
	s, err := ParseState([]byte(doc))
	require.NoError(t, err)
	require.Equal(t, int64(3), s.Ports[0].FilterSeq)
	require.Equal(t, int64(20), s.Ports[0].HairpinSeq)
	require.Equal(t, []IngressHistory{{Family: nft.IPv4, Bridge: "docker_gwbridge", Masquerade: 5, Chains: 4}}, s.IngressHistory)
	out, err := s.Encode()
	require.NoError(t, err)
	again, err := ParseState(out)
	require.NoError(t, err)
	require.Equal(t, s, again)
}

func TestParseStateErrors(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(sampleDoc, old) {
			t.Fatalf("sample has no %q", old)
		}
		return strings.Replace(sampleDoc, old, new, 1)
	}
	for _, tc := range []struct {
		name, doc, field, reason string
	}{
		{"not json", "nope", "state", "not valid JSON"},
		{"truncated", sampleDoc[:40], "state", "truncated"},
		{"empty", "", "state", "empty"},
		{"trailing", sampleDoc + "{}", "state", "trailing data"},
		{"no version", `{}`, "version", "not a dnft state"},
		{"future version", `{"version": 2}`, "version", "unsupported"},
		{"unknown field", edit(`"version": 1,`, `"version": 1, "extra": 1,`), "extra", "unknown field"},
		{"wrong type", edit(`"host_port": 8080`, `"host_port": "8080"`), "ports.host_port", "must be a uint16"},
		{"bad subnet", edit(`"172.18.0.0/16"`, `"172.18.0.300/16"`), "networks[0].subnets[0]", "not a CIDR"},
		{"no subnet", edit(`"subnets": ["172.19.0.0/16"]`, `"subnets": []`), "networks[1].subnets", "IPv4 subnet"},
		{"host bits", edit(`"172.19.0.0/16"`, `"172.19.0.1/16"`), "networks[1].subnets", "host bits"},
		{"duplicate name", edit(`"name": "b"`, `"name": "a"`), "networks[1].name", "exists"},
		{"overlap", edit(`"172.19.0.0/16"`, `"172.18.128.0/17"`), "networks[1].subnets", "overlaps"},
		{"bad bridge", edit(`"br-b"`, `"a-very-long-bridge-name"`), "networks[1].bridge", "15 bytes"},
		{"bad address", edit(`"host_binding_ipv4": "192.0.2.1"`, `"host_binding_ipv4": "192.0.2"`), "networks[1].host_binding_ipv4", "not an IP"},
		{"ipv6 off", edit(`"ipv6": true`, `"ipv6": false`), "networks[0].subnets", "IPv6 is not enabled"},
		{"unknown network", edit(`"network": "b"`, `"network": "c"`), "ports[1].network", "no such network"},
		{"container outside", edit(`"172.19.0.2"`, `"172.20.0.2"`), "ports[1].container_ip", "not in network"},
		{"port clash", edit(`"host_port": 8081`, `"host_port": 8080`), "ports[1].binding", "already published"},
		{"bad proto", edit(`"proto": "tcp"`, `"proto": "icmp"`), "ports[0].proto", "tcp, udp or sctp"},
		{"negative seq", edit(`"seq": 12`, `"seq": -1`), "ports[0].seq", "negative"},
		{"bad target", edit(`"target": "172.30.0.2"`, `"target": "x"`), "ingress[0].target", "not an IP"},
		{"bad refs", edit(`"refs": 2`, `"refs": -2`), "ingress[0].refs", "at least 1"},
		{"gateway is a network's bridge", edit(`"target": "172.30.0.2",`, `"target": "172.30.0.2", "bridge": "br-a",`), "ingress[0].bridge", "bridge of network"},
		{"ingress clash", edit(`"proto": "udp", "port": 30000`, `"proto": "tcp", "port": 8081`), "ingress[0].port", "already published"},
		{"no daemon", edit(`"daemon": {"userland_proxy": true, "ipv6": true, "allow_direct_routing": false}`, `"daemon": null`), "daemon", "missing"},
		{"bad family", edit(`"docker_user": []`, `"docker_user": [{"family": "inet", "expr": ""}]`), "docker_user[0].family", "ip or ip6"},
		{"bad base64", edit(`"docker_user": []`, `"docker_user": [{"family": "ip", "expr": "!!"}]`), "docker_user[0].expr", "not base64"},
		{"bad expressions", edit(`"docker_user": []`, `"docker_user": [{"family": "ip", "expr": "AAAA"}]`), "docker_user[0].expr", "bad expression list"},
		{"filter_seq after", edit(`"container_port": 80, "seq": 12}`, `"container_port": 80, "seq": 12, "filter_seq": 12}`), "ports[0].filter_seq", "below the binding's seq"},
		{"hairpin_seq before", edit(`"container_port": 80, "seq": 12}`, `"container_port": 80, "seq": 12, "hairpin_seq": 3}`), "ports[0].hairpin_seq", "above the binding's seq"},
		{"history without seq", edit(`"container_port": 80}`, `"container_port": 80, "filter_seq": 3}`), "ports[1].filter_seq", "below the binding's seq"},
		{"history family", edit(`"docker_user": []`, `"ingress_history": [{"family": "inet", "bridge": "docker_gwbridge"}], "docker_user": []`), "ingress_history[0].family", "ip or ip6"},
		{"history gateway", edit(`"docker_user": []`, `"ingress_history": [{"family": "ip", "bridge": "gw9", "masquerade_seq": 1}], "docker_user": []`), "ingress_history[0].bridge", "has no ip ingress port"},
		{"history masquerade", edit(`"docker_user": []`, `"ingress_history": [{"family": "ip", "bridge": "docker_gwbridge", "masquerade_seq": 14}], "docker_user": []`), "ingress_history[0].masquerade_seq", "not after"},
		{"history chains", edit(`"docker_user": []`, `"ingress_history": [{"family": "ip", "bridge": "docker_gwbridge", "chains_seq": -1}], "docker_user": []`), "ingress_history[0].chains_seq", "must be positive"},
		{"no expressions", edit(`"docker_user": []`, `"docker_user": [{"family": "ip", "expr": ""}]`), "docker_user[0].expr", "no expressions"},
		{"user rule loops", edit(`"docker_user": []`, `"docker_user": [{"family": "ip", "expr": "`+jumpExpr(t, "DOCKER-USER")+`"}]`), "docker_user[0]", "a loop"},
		{"user rule to a base chain", edit(`"docker_user": []`, `"docker_user": [{"family": "ip", "expr": "`+jumpExpr(t, "filter-FORWARD")+`"}]`), "docker_user[0]", "base chain"},
		{"/32 subnet", edit(`"172.19.0.0/16"`, `"172.19.0.0/32"`), "networks[1].subnets", "too small"},
		{"loopback subnet", edit(`"172.19.0.0/16"`, `"127.19.0.0/16"`), "networks[1].subnets", "loopback"},
		{"multicast subnet", edit(`"172.19.0.0/16"`, `"224.19.0.0/16"`), "networks[1].subnets", "multicast"},
		{"bridge lo", edit(`"br-b"`, `"lo"`), "networks[1].bridge", "loopback"},
		{"bridge wildcard", edit(`"br-b"`, `"br+"`), "networks[1].bridge", "wildcard"},
		{"network address", edit(`"172.19.0.2"`, `"172.19.0.0"`), "ports[1].container_ip", "network address"},
		{"broadcast address", edit(`"172.19.0.2"`, `"172.19.255.255"`), "ports[1].container_ip", "broadcast address"},
		{"record too long", edit(`"icc": false`, `"icc": false, "name": "`+strings.Repeat("b", 64)+`", "host_ipv4": "192.0.2.9"`), "networks[1].name", "more than the 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseState([]byte(tc.doc))
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "want a FieldError, got %v", err)
			require.Equal(t, tc.field, fe.Field, "%v", err)
			require.Contains(t, fe.Error(), tc.reason)
		})
	}
}

// FuzzParseState: the parser never panics; what it accepts encodes to a
// document that parses to the same encoding.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(sampleDoc))
	f.Add([]byte(`{"version":1,"daemon":null,"networks":[],"ports":[],"ingress":[],"docker_user":[]}`))
	f.Add([]byte(`{"version":1,"daemon":{},"docker_user":[{"family":"ip","expr":"JAABgAkAAQBtZXRhAAAAABQAAoAIAAIAAAAABggAAQAAAAAB"}]}`))
	f.Add([]byte(`{"version":1,"networks":[{"name":"x","subnets":["10.0.0.0/8"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %v", err)
			}
			return
		}
		doc, err := s.Encode()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := ParseState(doc)
		if err != nil {
			t.Fatalf("encoded state refused: %v\n%s", err, doc)
		}
		doc2, _ := again.Encode()
		if string(doc) != string(doc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", doc, doc2)
		}
	})
}

// TestParseStateBounded: validation stops when its context is done, and
// values echoed in errors are cut to a sane length.
func TestParseStateBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ParseStateContext(ctx, []byte(sampleDoc))
	require.ErrorIs(t, err, context.Canceled)

	long := strings.Repeat("x", 100000)
	_, err = ParseState([]byte(strings.Replace(sampleDoc, `"name": "b"`, `"name": "`+long+`"`, 1)))
	require.Error(t, err)
	require.Less(t, len(err.Error()), 400, "the value is cut: %.200s", err)
}

// jumpExpr is the expressions of a rule that jumps to chain, in base64.
func jumpExpr(t *testing.T, chain string) string {
	r, err := nft.EncodeUserRule(nft.Rule{Family: nft.IPv4, Action: nft.Verdict{Kind: nft.Jump, Chain: chain}})
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(r.Exprs)
}

// TestSortBySeq checks sortBySeq against a stable sort of the elements:
// by sequence number, zero last, equal ones in input order.
func TestSortBySeq(t *testing.T) {
	type item struct {
		seq int64
		at  int
	}
	for _, tc := range []struct {
		name string
		seqs []int64
	}{
		{"empty", nil},
		{"one", []int64{5}},
		{"sorted", []int64{1, 2, 3, 4}},
		{"reversed", []int64{4, 3, 2, 1}},
		{"zeros last in order", []int64{0, 3, 0, 1, 0}},
		{"equal in order", []int64{2, 1, 2, 1, 2, 0, 1}},
		{"cycles", []int64{3, 1, 2, 6, 4, 5, 9, 7, 8, 10}},
		{"many", manySeqs(500)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []item
			for i, q := range tc.seqs {
				got = append(got, item{q, i})
			}
			want := slices.Clone(got)
			slices.SortStableFunc(want, func(a, b item) int {
				switch {
				case a.seq == b.seq:
					return 0
				case a.seq == 0:
					return 1
				case b.seq == 0:
					return -1
				}
				return cmp.Compare(a.seq, b.seq)
			})
			sortBySeq(got, func(x item) int64 { return x.seq })
			require.Equal(t, want, got)
		})
	}
}

// manySeqs returns n sequence numbers in a scrambled order, with
// repeats and zeros.
func manySeqs(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i*7919) % 37
	}
	return out
}
