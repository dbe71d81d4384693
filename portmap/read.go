package portmap

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// Published is a published binding as read back from the kernel.
type Published struct {
	// Network is the name of the network the binding was published on.
	Network string
	// Binding is normalised: HostIP is always valid, the unspecified
	// address (0.0.0.0 or ::) meaning all addresses.
	Binding
	// Seq orders bindings by publication (larger is newer).
	Seq int64
	// FilterSeq and HairpinSeq, when not 0, are where iptables' view
	// places the binding's filter accept and hairpin masquerade instead of
	// at Seq: another binding of the same container port has the same
	// rules, byte for byte, and iptables' -D removed the first copy that
	// matched rather than this binding's own (see [SetPositions]). History
	// that changes no packet; FilterSeq is older than Seq (filter accepts
	// are inserted), HairpinSeq newer (hairpins are appended).
	FilterSeq, HairpinSeq int64
	// Packets and Bytes are the counter of the binding's DNAT map element
	// as read back (the first packet of every connection it forwarded);
	// zero in an [Index].
	Packets, Bytes uint64
}

// SetReader reads one set or map; *nft.Conn implements it.
type SetReader interface {
	ReadSet(ctx context.Context, f nft.Family, name string) (nft.SetState, bool, error)
}

// ReadBindings reads the published bindings of every family of d from the
// two DNAT maps, oldest first. It reads every binding: the cost grows with
// their number.
func ReadBindings(ctx context.Context, r SetReader, d chains.DaemonConfig) ([]Published, error) {
	var out []Published
	for _, f := range d.Families() {
		var maps [2]nft.SetState
		for i, name := range []string{MapDNATHost, MapDNATAny} {
			s, ok, err := r.ReadSet(ctx, f, name)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("%s map %s is missing: dnft's table was initialized without port publishing or changed by someone else (reset and init again)", f, name)
			}
			maps[i] = s
		}
		ps, err := DecodeBindings(f, maps[0], maps[1])
		if err != nil {
			return nil, err
		}
		// Tables set up before the set existed have no history.
		if s, ok, err := r.ReadSet(ctx, f, SetPositions); err != nil {
			return nil, err
		} else if ok {
			if err := ApplyPositions(f, s, ps); err != nil {
				return nil, err
			}
		}
		out = append(out, ps...)
	}
	SortPublished(out)
	return out, nil
}

// DecodeBindings decodes the bindings of one family from the elements of
// its dnat-host and dnat-any maps, oldest first.
func DecodeBindings(f nft.Family, host, all nft.SetState) ([]Published, error) {
	out := make([]Published, 0, len(host.Elements)+len(all.Elements))
	for _, m := range []struct {
		s      nft.SetState
		fields []nft.Field
	}{{host, keyHost}, {all, keyAny}} {
		for _, e := range m.s.Elements {
			p, err := decodeBinding(f, m.fields, e)
			if err != nil {
				return nil, fmt.Errorf("%s map %s: %w", f, m.s.Name, err)
			}
			out = append(out, p)
		}
	}
	SortPublished(out)
	return out, nil
}

// decodeBinding decodes one element of a DNAT map whose key has fields
// (keyHost or keyAny).
func decodeBinding(f nft.Family, fields []nft.Field, e nft.ElementState) (Published, error) {
	v, err := nft.DecodeKey(f, fields, e.Key)
	if err != nil {
		return Published{}, err
	}
	to, err := nft.DecodeTarget(f, e.Data)
	if err != nil {
		return Published{}, err
	}
	var h netip.Addr
	if len(v) == 3 {
		h, v = v[0].Addr, v[1:]
	} else if f == nft.IPv6 {
		h = netip.IPv6Unspecified()
	} else {
		h = netip.IPv4Unspecified()
	}
	b := Binding{Proto: protoOf(v[0].Proto), HostIP: h, HostPort: v[1].Port, ContainerIP: to.Addr(), ContainerPort: to.Port()}
	network, seq, err := parseRecord(e.Comment)
	if err != nil {
		return Published{}, fmt.Errorf("element %s: %w", b, err)
	}
	return Published{Network: network, Binding: b, Seq: seq, Packets: e.Packets, Bytes: e.Bytes}, nil
}

// SortPublished orders bindings oldest first (then by text, for ties).
func SortPublished(ps []Published) {
	slices.SortStableFunc(ps, func(a, b Published) int {
		if a.Seq != b.Seq {
			return cmp.Compare(a.Seq, b.Seq)
		}
		return strings.Compare(a.String(), b.String())
	})
}

// OfNetwork returns the bindings published on the named network.
func OfNetwork(ps []Published, network string) []Published {
	var out []Published
	for _, p := range ps {
		if p.Network == network {
			out = append(out, p)
		}
	}
	return out
}

func protoOf(n uint8) Proto {
	for _, p := range []Proto{TCP, UDP, SCTP} {
		if p.Number() == n {
			return p
		}
	}
	return Proto(strconv.Itoa(int(n)))
}

// parseRecord parses [record]'s output with a sequence number, strictly:
// exactly the network (a valid name) and the sequence number.
func parseRecord(s string) (network string, seq int64, err error) {
	kv, err := recordFields(s, [2]string{"net", "q"})
	if err != nil {
		return "", 0, err
	}
	network = kv[0]
	if !chains.ValidName(network) {
		return "", 0, fmt.Errorf("bad network name in record %q", clip(s))
	}
	seq, err = strconv.ParseInt(kv[1], 36, 64)
	if err != nil || seq < 0 {
		return "", 0, fmt.Errorf("bad sequence in record %q", clip(s))
	}
	return network, seq, nil
}

// recordFields splits a record into the values of its two fields, which
// must be exactly keys, once each, in any order (without allocating: a
// state holds a record per binding).
func recordFields(s string, keys [2]string) ([2]string, error) {
	var vals [2]string
	var seen [2]bool
	rest, ok := strings.CutPrefix(s, recordVersion+";")
	a, b, two := strings.Cut(rest, ";")
	if !ok || !two || strings.Contains(b, ";") {
		return vals, fmt.Errorf("not a record of dnft: %q", clip(s))
	}
	for _, p := range [2]string{a, b} {
		k, v, _ := strings.Cut(p, "=")
		i := slices.Index(keys[:], k)
		if i < 0 || seen[i] {
			return vals, fmt.Errorf("bad field %q in record %q", clip(k), clip(s))
		}
		vals[i], seen[i] = v, true
	}
	return vals, nil
}

func clip(s string) string { return chains.Clip(s) }

// DecodeDNAT decodes one element of the dnat-any map (all) or the
// dnat-host map of a family: the binding's first record. Its HostIP is
// the unspecified address for dnat-any.
func DecodeDNAT(f nft.Family, all bool, e nft.ElementState) (Published, error) {
	fields := keyHost
	if all {
		fields = keyAny
	}
	return decodeBinding(f, fields, e)
}

// DecodeSkip decodes one element of the dnat-skip-any set (all) or the
// dnat-skip-host set of a family: the binding's second record (see
// [SkipRecord]). The network is given by its bridge, the element's key;
// p.Network is empty.
func DecodeSkip(f nft.Family, all bool, e nft.ElementState) (bridge string, p Published, err error) {
	fields := keySkipH
	if all {
		fields = keySkipA
	}
	v, err := nft.DecodeKey(f, fields, e.Key)
	if err != nil {
		return "", Published{}, err
	}
	bridge, v = v[0].Name, v[1:]
	h := unspecified(f)
	if !all {
		h, v = v[0].Addr, v[1:]
	}
	b := Binding{Proto: protoOf(v[0].Proto), HostIP: h, HostPort: v[1].Port}
	kv, err := recordFields(e.Comment, [2]string{"q", "to"})
	if err != nil {
		return "", Published{}, fmt.Errorf("element of bridge %q, %s: %w", bridge, hostAddr(b), err)
	}
	seq, err := strconv.ParseInt(kv[0], 36, 64)
	if err != nil || seq < 0 {
		return "", Published{}, fmt.Errorf("element of bridge %q, %s: bad sequence in record %q", bridge, hostAddr(b), clip(e.Comment))
	}
	to, err := netip.ParseAddrPort(kv[1])
	if err != nil {
		return "", Published{}, fmt.Errorf("element of bridge %q, %s: bad target in record %q", bridge, hostAddr(b), clip(e.Comment))
	}
	b.ContainerIP, b.ContainerPort = to.Addr(), to.Port()
	return bridge, Published{Binding: b, Seq: seq}, nil
}

// SharedKeys returns the keys of the elements a binding shares with the
// other bindings to its container port, in the published set and the
// hairpin set of its family, as they read back.
func SharedKeys(b Binding) (published, hairpin []byte, err error) {
	f := family(b.ContainerIP)
	p := b.Proto.Number()
	c, cp := b.ContainerIP, b.ContainerPort
	if published, err = nft.EncodeKey(f, chains.PublishedSet(f).Key, []nft.Value{nft.Addr(c), nft.Proto(p), nft.Port(cp)}); err != nil {
		return nil, nil, err
	}
	hairpin, err = nft.EncodeKey(f, keyHairpin, []nft.Value{nft.Addr(c), nft.Addr(c), nft.Proto(p), nft.Port(cp)})
	return published, hairpin, err
}

// parseCount parses the comment of a [SetTargets] element (withNet) or
// of a [SetHostPorts] element: "dnft1;net=NAME;n=COUNT" or
// "dnft1;n=COUNT", COUNT at least 1.
func parseCount(s string, withNet bool) (network string, n int, err error) {
	parts := strings.Split(s, ";")
	bad := func() (string, int, error) { return "", 0, fmt.Errorf("bad count record %q: %w", s, errCounts) }
	if parts[0] != recordVersion || len(parts) != 2+b2i(withNet) {
		return bad()
	}
	if withNet {
		v, ok := strings.CutPrefix(parts[1], "net=")
		if !ok || v == "" {
			return bad()
		}
		network = v
	}
	v, ok := strings.CutPrefix(parts[len(parts)-1], "n=")
	if !ok {
		return bad()
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < 1 || strconv.Itoa(n) != v {
		return bad()
	}
	return network, n, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
