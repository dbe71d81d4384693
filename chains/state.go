package chains

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dnft/dnft/nft"
)

// stateVersion prefixes every record dnft keeps in the kernel.
const stateVersion = "dnft1"

// MaxRecordLen is the longest record dnft keeps: an element comment.
const MaxRecordLen = nft.MaxElementComment

// Network is a network as dnft knows it: its configuration and the order
// in which it was created.
type Network struct {
	NetworkConfig
	// Seq orders networks by creation (larger is newer).
	Seq int64
	// MasqSeq4 and MasqSeq6, when not 0, are where iptables places the
	// network's masquerade from the host (userland proxy off) in each
	// family instead of at Seq: an ingress gateway on the network's
	// bridge has the same rule, byte for byte, and iptables' -D removed
	// the copy at the network's place when the gateway's last port went
	// (see [Network.MasqPos]). It is older than Seq (the rules are
	// inserted). The view shows it there, and newer SNAT networks do not
	// yield to it ([Order]).
	MasqSeq4, MasqSeq6 int64
}

// MasqPos is where the network's masquerade from the host sits among
// the `-I POSTROUTING` rules of family f: MasqSeq4 or MasqSeq6, or Seq.
func (n Network) MasqPos(f nft.Family) int64 {
	m := n.MasqSeq4
	if f == nft.IPv6 {
		m = n.MasqSeq6
	}
	if m != 0 {
		return m
	}
	return n.Seq
}

// WithMasqPos returns n with its masquerade from the host in family f at
// pos (see [Network.MasqPos]).
func (n Network) WithMasqPos(f nft.Family, pos int64) Network {
	if pos == n.Seq {
		pos = 0
	}
	if f == nft.IPv6 {
		n.MasqSeq6 = pos
	} else {
		n.MasqSeq4 = pos
	}
	return n
}

// identity is n without history: what tells networks apart.
func (n Network) identity() Network {
	n.MasqSeq4, n.MasqSeq6 = 0, 0
	return n
}

// RecordFits reports whether n's record fits an element comment.
func RecordFits(n Network) bool { return len(EncodeNetwork(n)) <= MaxRecordLen }

// RewriteNetwork queues the replacement of both copies of the record of
// network n (its networks element and its IPv4 forward-out element) by
// next's; they have the same bridge.
func RewriteNetwork(tx *nft.Tx, n, next Network) {
	key := []nft.Value{nft.Ifname(n.Bridge)}
	record := EncodeNetwork(next)
	tx.DeleteElements(NetworksSet(), nft.Element{Key: key})
	tx.AddElements(NetworksSet(), nft.Element{Key: key, Comment: record})
	jump := &nft.Verdict{Kind: nft.Jump, Chain: ForwardChain(n.Bridge)}
	tx.DeleteElements(ForwardOutMap(nft.IPv4), nft.Element{Key: key, Verdict: jump})
	tx.AddElements(ForwardOutMap(nft.IPv4), nft.Element{Key: key, Verdict: jump, Comment: record})
}

// EncodeDaemon turns the daemon configuration into its record, kept on
// the daemon elements of the networks set and the forward-out map.
func EncodeDaemon(d DaemonConfig) string {
	s := fmt.Sprintf("%s;proxy=%d;ipv6=%d;adr=%d", stateVersion, b2i(d.UserlandProxy), b2i(d.IPv6), b2i(d.AllowDirectRouting))
	if d.ForwardDrop4 || d.ForwardDrop6 {
		s += fmt.Sprintf(";fwdrop=%d%d", b2i(d.ForwardDrop4), b2i(d.ForwardDrop6))
	}
	if d.Layout != "" {
		s += ";layout=" + d.Layout
	}
	if d.RawTable4 || d.RawTable6 {
		s += fmt.Sprintf(";raw=%d%d", b2i(d.RawTable4), b2i(d.RawTable6))
	}
	return s
}

// DecodeDaemon parses [EncodeDaemon]'s output; anything else is an
// error.
func DecodeDaemon(s string) (DaemonConfig, error) {
	kv, err := parseRecord(s, "proxy", "ipv6", "adr", "fwdrop", "layout", "raw")
	if err != nil {
		return DaemonConfig{}, fmt.Errorf("daemon record: %w", err)
	}
	var d DaemonConfig
	for _, f := range []struct {
		k    string
		into *bool
	}{{"proxy", &d.UserlandProxy}, {"ipv6", &d.IPv6}, {"adr", &d.AllowDirectRouting}} {
		v, ok := kv[f.k]
		if !ok || (v != "0" && v != "1") {
			return DaemonConfig{}, fmt.Errorf("daemon record %q: %s must be 0 or 1", Clip(s), f.k)
		}
		*f.into = v == "1"
	}
	if v, ok := kv["fwdrop"]; ok {
		if len(v) != 2 || strings.Trim(v, "01") != "" || v == "00" {
			return DaemonConfig{}, fmt.Errorf("daemon record %q: bad fwdrop %q", Clip(s), Clip(v))
		}
		d.ForwardDrop4, d.ForwardDrop6 = v[0] == '1', v[1] == '1'
		if d.ForwardDrop6 && !d.IPv6 {
			return DaemonConfig{}, fmt.Errorf("daemon record %q: drops IPv6 forwarding, but IPv6 is off", Clip(s))
		}
	}
	if v, ok := kv["layout"]; ok {
		if err := ValidLayout(v); err != nil || v == "" {
			return DaemonConfig{}, fmt.Errorf("daemon record: bad layout %q", Clip(v))
		}
		d.Layout = v
	}
	if v, ok := kv["raw"]; ok {
		if len(v) != 2 || strings.Trim(v, "01") != "" {
			return DaemonConfig{}, fmt.Errorf("daemon record: bad raw %q", v)
		}
		d.RawTable4, d.RawTable6 = v[0] == '1', v[1] == '1'
	}
	return d, nil
}

// EncodeNetwork turns a network into its record, kept on the network's
// elements of the networks set and of the forward-out map.
func EncodeNetwork(n Network) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s;n=%s;s4=%s", stateVersion, n.Name, n.Subnet4)
	if n.Subnet6.IsValid() {
		fmt.Fprintf(&b, ";s6=%s", n.Subnet6)
	}
	fmt.Fprintf(&b, ";f=%d%d%d", b2i(n.Internal), b2i(n.ICC), b2i(n.Masquerade))
	for _, a := range []struct {
		k string
		v netip.Addr
	}{{"h4", n.HostIPv4}, {"h6", n.HostIPv6}, {"b", n.HostBindingIPv4}} {
		if a.v.IsValid() {
			fmt.Fprintf(&b, ";%s=%s", a.k, a.v)
		}
	}
	fmt.Fprintf(&b, ";q=%s", strconv.FormatInt(n.Seq, 36))
	for _, m := range []struct {
		k string
		v int64
	}{{"m4", n.MasqSeq4}, {"m6", n.MasqSeq6}} {
		if m.v != 0 {
			fmt.Fprintf(&b, ";%s=%s", m.k, strconv.FormatInt(m.v, 36))
		}
	}
	return b.String()
}

// DecodeNetwork parses [EncodeNetwork]'s output for the network of the
// bridge (the element's key) and validates it as user input is
// validated ([NetworkConfig.Validate]): a record that dnft would not
// have written is an error.
func DecodeNetwork(bridge, s string) (Network, error) {
	bad := func(format string, args ...any) (Network, error) {
		return Network{}, fmt.Errorf("network record of bridge %q: %s", Clip(bridge), fmt.Sprintf(format, args...))
	}
	if len(s) > MaxRecordLen {
		return bad("%d bytes, more than %d", len(s), MaxRecordLen)
	}
	kv, err := parseRecord(s, "n", "s4", "s6", "f", "h4", "h6", "b", "q", "m4", "m6")
	if err != nil {
		return bad("%v", err)
	}
	n := Network{NetworkConfig: NetworkConfig{Name: kv["n"], Bridge: bridge}}
	for _, k := range []string{"n", "s4", "f", "q"} {
		if _, ok := kv[k]; !ok {
			return bad("no %s", k)
		}
	}
	for _, p := range []struct {
		k    string
		into *netip.Prefix
	}{{"s4", &n.Subnet4}, {"s6", &n.Subnet6}} {
		if v, ok := kv[p.k]; ok {
			if *p.into, err = netip.ParsePrefix(v); err != nil {
				return bad("%s: %v", p.k, err)
			}
		}
	}
	for _, a := range []struct {
		k    string
		into *netip.Addr
	}{{"h4", &n.HostIPv4}, {"h6", &n.HostIPv6}, {"b", &n.HostBindingIPv4}} {
		if v, ok := kv[a.k]; ok {
			if *a.into, err = netip.ParseAddr(v); err != nil {
				return bad("%s: %v", a.k, err)
			}
		}
	}
	f := kv["f"]
	if len(f) != 3 || strings.Trim(f, "01") != "" {
		return bad("bad flags %q", Clip(f))
	}
	n.Internal, n.ICC, n.Masquerade = f[0] == '1', f[1] == '1', f[2] == '1'
	if n.Seq, err = strconv.ParseInt(kv["q"], 36, 64); err != nil || n.Seq < 0 {
		return bad("bad sequence %q", Clip(kv["q"]))
	}
	for _, m := range []struct {
		k    string
		into *int64
	}{{"m4", &n.MasqSeq4}, {"m6", &n.MasqSeq6}} {
		if v, ok := kv[m.k]; ok {
			if *m.into, err = strconv.ParseInt(v, 36, 64); err != nil || *m.into <= 0 || *m.into >= n.Seq {
				return bad("bad masquerade position %q", Clip(v))
			}
		}
	}
	if err := n.Validate(); err != nil {
		return bad("%v", err)
	}
	return n, nil
}

// parseRecord splits a record into its fields, which must be among keys
// and appear once.
func parseRecord(s string, keys ...string) (map[string]string, error) {
	parts := strings.Split(s, ";")
	if parts[0] != stateVersion {
		return nil, fmt.Errorf("unknown record version %q", Clip(parts[0]))
	}
	kv := make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("bad field %q", Clip(p))
		case !slices.Contains(keys, k):
			return nil, fmt.Errorf("unknown field %q", Clip(k))
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("field %q twice", k)
		}
		kv[k] = v
	}
	return kv, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Records is one copy of the daemon and network records: the networks
// set's or the forward-out map's. Each network is keyed by its bridge;
// a record that cannot be decoded or is invalid is in Bad instead.
type Records struct {
	// Present is false when the set does not exist.
	Present bool
	// Daemon is the daemon record, nil when there is none.
	Daemon *DaemonConfig
	// Nets are the valid network records by bridge.
	Nets map[string]Network
	// Bad holds the error of every record that is not valid, by its
	// element's key (the daemon's is daemonKey), in element order.
	Bad []RecordError
}

// RecordError is a record that is not valid.
type RecordError struct {
	// Key is the element's key: a bridge name or DaemonKey.
	Key string
	Err error
}

// DaemonKey is the key of the daemon elements of the networks set and
// the forward-out map.
const DaemonKey = daemonKey

// ReadRecords decodes the records of the networks set or of the
// forward-out map.
func ReadRecords(s nft.SetState, ok bool) Records {
	r := Records{Present: ok, Nets: map[string]Network{}}
	if !ok {
		return r
	}
	daemon := func(comment string) {
		d, err := DecodeDaemon(comment)
		if err != nil {
			r.Bad = append(r.Bad, RecordError{daemonKey, err})
			return
		}
		if r.Daemon != nil {
			r.Bad = append(r.Bad, RecordError{daemonKey, errors.New("daemon record twice")})
			return
		}
		r.Daemon = &d
	}
	for _, e := range s.Elements {
		v, err := nft.DecodeKey(nft.IPv4, []nft.Field{nft.FieldIIFName}, e.Key)
		if err != nil {
			r.Bad = append(r.Bad, RecordError{fmt.Sprintf("0x%x", e.Key), err})
			continue
		}
		key := v[0].Name
		if key == daemonKey {
			daemon(e.Comment)
			continue
		}
		if err := ValidateIfName("bridge", key); err != nil {
			r.Bad = append(r.Bad, RecordError{key, fmt.Errorf("element key: %w", err)})
			continue
		}
		n, err := DecodeNetwork(key, e.Comment)
		if err != nil {
			r.Bad = append(r.Bad, RecordError{key, err})
			continue
		}
		r.Nets[key] = n
	}
	return r
}

// ErrRecords means dnft's records in the kernel are damaged or do not
// agree: what dnft's tables should hold cannot be told from them alone.
var ErrRecords = errors.New("dnft's records are damaged (run dnft check, and dnft repair)")

// ReadState reads the daemon configuration and the networks from their
// two copies, the networks set and the forward-out map of the IPv4 table
// (ok says whether each exists), and checks them: the copies must agree
// and every record be valid, the networks as a whole too (names,
// bridges and subnets unique). Anything else is an error wrapping
// [ErrRecords]. initialized is false when neither set exists.
func ReadState(networks nft.SetState, okN bool, fwd nft.SetState, okF bool) (d DaemonConfig, nets []Network, initialized bool, err error) {
	if !okN && !okF {
		return d, nil, false, nil
	}
	a, b := ReadRecords(networks, okN), ReadRecords(fwd, okF)
	fail := func(format string, args ...any) (DaemonConfig, []Network, bool, error) {
		return DaemonConfig{}, nil, true, fmt.Errorf("%w: %s", ErrRecords, fmt.Sprintf(format, args...))
	}
	switch {
	case !okN:
		return fail("set %s is missing", SetNetworks)
	case !okF:
		return fail("map %s is missing", MapForwardOut)
	case len(a.Bad) > 0:
		return fail("set %s element %q: %v", SetNetworks, a.Bad[0].Key, a.Bad[0].Err)
	case len(b.Bad) > 0:
		return fail("map %s element %q: %v", MapForwardOut, b.Bad[0].Key, b.Bad[0].Err)
	case a.Daemon == nil || b.Daemon == nil:
		return fail("the daemon record is missing")
	case *a.Daemon != *b.Daemon:
		return fail("the two daemon records differ")
	case len(a.Nets) != len(b.Nets):
		return fail("set %s has %d network records, map %s %d", SetNetworks, len(a.Nets), MapForwardOut, len(b.Nets))
	}
	for bridge, n := range a.Nets {
		if b.Nets[bridge] != n {
			return fail("the two records of bridge %q differ", bridge)
		}
		nets = append(nets, n)
	}
	SortNetworks(nets)
	if err := CheckNetworks(*a.Daemon, nets); err != nil {
		return fail("%v", err)
	}
	return *a.Daemon, nets, true, nil
}

// CheckNetworks validates networks (oldest first) as a whole: each on
// its own ([CheckNew] with no other network: its configuration and the
// length of its record), IPv6 subnets only with d.IPv6, and all of them
// together ([Conflict]). It returns the first error, a *FieldError
// naming the network.
func CheckNetworks(d DaemonConfig, nets []Network) error {
	at := func(i int, err error) error {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &FieldError{Field: fe.Field, Value: fe.Value, Reason: fmt.Sprintf("%s (network %s)", fe.Reason, Clip(nets[i].Name))}
		}
		return err
	}
	for i, n := range nets {
		if err := CheckNew(n.NetworkConfig, nil); err != nil {
			return at(i, err)
		}
		if n.Subnet6.IsValid() && !d.IPv6 {
			return at(i, &FieldError{"subnet", n.Subnet6.String(), "IPv6 is not enabled"})
		}
	}
	if i, err := Conflict(nets); err != nil {
		return at(i, err)
	}
	return nil
}

// Conflict checks networks against each other, as [CheckNew] checks a
// new one against the existing ones — names, bridges and subnets must
// not be shared — in O(n log n). It returns the index of the later
// network of the first conflict found, and a *FieldError.
func Conflict(nets []Network) (int, error) {
	names := make(map[string]int, len(nets))
	bridges := make(map[string]int, len(nets))
	for i, n := range nets {
		if j, dup := names[n.Name]; dup {
			return i, &FieldError{"name", n.Name, fmt.Sprintf("a network with this name exists (bridge %s)", nets[j].Bridge)}
		}
		if j, dup := bridges[n.Bridge]; dup {
			return i, &FieldError{"bridge", n.Bridge, fmt.Sprintf("already used by network %q", nets[j].Name)}
		}
		names[n.Name], bridges[n.Bridge] = i, i
	}
	for _, sub := range []func(Network) netip.Prefix{
		func(n Network) netip.Prefix { return n.Subnet4 },
		func(n Network) netip.Prefix { return n.Subnet6 },
	} {
		if i, j, ok := overlapping(nets, sub); ok {
			if i > j {
				i, j = j, i
			}
			return j, &FieldError{"subnet", sub(nets[j]).String(), fmt.Sprintf("overlaps %s of network %q", sub(nets[i]), nets[i].Name)}
		}
	}
	return 0, nil
}

// overlapping finds two networks whose subnets (sub; invalid ones left
// out) overlap, sorting them by first address: O(n log n).
func overlapping(nets []Network, sub func(Network) netip.Prefix) (int, int, bool) {
	idx := make([]int, 0, len(nets))
	for i, n := range nets {
		if sub(n).IsValid() {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return sub(nets[a]).Addr().Compare(sub(nets[b]).Addr()) })
	// Prefixes either nest or are disjoint: sorted by first address, a
	// prefix that overlaps none before it ends before the next begins,
	// so checking neighbours is enough.
	for k := 1; k < len(idx); k++ {
		if sub(nets[idx[k-1]]).Overlaps(sub(nets[idx[k]])) {
			return idx[k-1], idx[k], true
		}
	}
	return 0, 0, false
}
