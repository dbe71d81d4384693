package dnft

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// State is dnft's complete desired state in a namespace: what
// [Firewall.Save] reads, [Firewall.Restore] programs and [Firewall.Apply]
// converges to. [State.Encode] and [ParseState] turn it into a versioned
// JSON document and back.
type State struct {
	// Daemon is the configuration Init was given; nil means dnft is not
	// initialized (no tables).
	Daemon *DaemonConfig
	// Networks are the networks, oldest first (by Seq).
	Networks []Network
	// Ports are the published bindings, oldest first, normalised (a
	// valid HostIP). Counters are not part of the state.
	Ports []Published
	// Ingress are the ingress publications with their reference counts,
	// oldest first. Counters are not part of the state.
	Ingress []IngressPublished
	// IngressHistory is the history of ingress gateways that iptables'
	// view needs (see [IngressHistory]); bindings and networks keep
	// theirs in their own fields.
	IngressHistory []IngressHistory
	// DockerUser are the operator's DOCKER-USER rules, IPv4's then IPv6's,
	// each family's in order. Nil means "not part of this state": Restore
	// and Apply then keep the rules DOCKER-USER has. Save always sets it.
	DockerUser []UserRule
}

// UserRule is one DOCKER-USER rule, kept as its netlink encoding so that
// it is re-created exactly, whatever it does. [ParseUserRule] makes one
// from iptables or nft text.
type UserRule struct {
	// Family is nft.IPv4 or nft.IPv6.
	Family nft.Family
	// Expr is the rule's NFTA_RULE_EXPRESSIONS payload in canonical form
	// (see [nft.CanonicalRule]).
	Expr []byte
	// Sets are the anonymous sets (inline { ... } lists) the rule looks
	// up, as "__set0", "__set1", ... in Expr.
	Sets []nft.AnonSet
	// Comment is the rule's comment.
	Comment string
	// NFT is the rule as `nft list` prints it, for people; it may be
	// empty and is ignored when the rule is programmed.
	NFT string
}

// ErrStateUnknown means dnft's records are missing from the kernel (one
// of its tables, its networks set or its DNAT maps was deleted): what
// should be there cannot be told without a saved state.
var ErrStateUnknown = errors.New("dnft's state is unknown")

// shorten returns the start of a value, for messages.
func shorten(b []byte) string {
	const max = 24
	if len(b) > max {
		return fmt.Sprintf("%x...", b[:max])
	}
	return fmt.Sprintf("%x", b)
}

// sortBySeq sorts stably by sequence number; zero (not given) sorts last,
// in input order. It sorts the positions, by sequence number then
// position, and moves each element once, along the cycles of the
// permutation: a stable sort of the elements themselves moves them
// O(n log² n) times (at 65,000 bindings of 128 bytes, 0.1 s of check).
func sortBySeq[T any](s []T, seq func(T) int64) {
	type pos struct {
		seq int64
		i   int
	}
	order := make([]pos, len(s))
	for i, v := range s {
		order[i] = pos{seq(v), i}
	}
	slices.SortFunc(order, func(a, b pos) int {
		switch {
		case (a.seq == 0) != (b.seq == 0):
			if a.seq == 0 {
				return 1
			}
			return -1
		case a.seq != b.seq:
			return cmp.Compare(a.seq, b.seq)
		}
		return cmp.Compare(a.i, b.i)
	})
	// Position k takes the element at order[k].i; a done position is
	// marked -1.
	for j := range order {
		if order[j].i < 0 {
			continue
		}
		first := s[j]
		for k := j; ; {
			from := order[k].i
			order[k].i = -1
			if from == j {
				s[k] = first
				break
			}
			s[k] = s[from]
			k = from
		}
	}
}

// StateVersion is the version of the JSON document of a [State].
const StateVersion = 1

// stateDoc is the JSON document of a State. Optional fields have the
// defaults of the CLI: userland proxy, ICC and masquerade on, tcp, the
// docker_gwbridge gateway, one reference.
type stateDoc struct {
	Version  int          `json:"version"`
	Daemon   *daemonDoc   `json:"daemon"`
	Networks []networkDoc `json:"networks"`
	Ports    []portDoc    `json:"ports"`
	Ingress  []ingressDoc `json:"ingress"`
	// IngressHistory is optional.
	IngressHistory []ingressHistoryDoc `json:"ingress_history,omitempty"`
	DockerUser     []userRuleDoc       `json:"docker_user"`
}

type daemonDoc struct {
	UserlandProxy      *bool `json:"userland_proxy"`
	IPv6               bool  `json:"ipv6"`
	AllowDirectRouting bool  `json:"allow_direct_routing"`
	ForwardDrop4       bool  `json:"forward_drop_ipv4,omitempty"`
	ForwardDrop6       bool  `json:"forward_drop_ipv6,omitempty"`
	// Layout is the iptables view's layout: absent for classic, "stages".
	Layout string `json:"layout,omitempty"`
	// RawTable4 and RawTable6 record that iptables' raw tables have been
	// used (see DaemonConfig.RawTable4).
	RawTable4 bool `json:"raw_table_ipv4,omitempty"`
	RawTable6 bool `json:"raw_table_ipv6,omitempty"`
}

type networkDoc struct {
	Name            string   `json:"name"`
	Bridge          string   `json:"bridge"`
	Subnets         []string `json:"subnets"`
	Internal        bool     `json:"internal"`
	ICC             *bool    `json:"icc"`
	Masquerade      *bool    `json:"masquerade"`
	HostIPv4        string   `json:"host_ipv4,omitempty"`
	HostIPv6        string   `json:"host_ipv6,omitempty"`
	HostBindingIPv4 string   `json:"host_binding_ipv4,omitempty"`
	Seq             int64    `json:"seq,omitempty"`
	// MasqSeq4 and MasqSeq6 are history for the iptables view (see
	// chains.Network.MasqSeq4).
	MasqSeq4 int64 `json:"host_masquerade_seq_ipv4,omitempty"`
	MasqSeq6 int64 `json:"host_masquerade_seq_ipv6,omitempty"`
}

type portDoc struct {
	Network       string `json:"network"`
	Proto         string `json:"proto"`
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      uint16 `json:"host_port"`
	ContainerIP   string `json:"container_ip"`
	ContainerPort uint16 `json:"container_port"`
	Seq           int64  `json:"seq,omitempty"`
	// FilterSeq and HairpinSeq are history for the iptables view (see
	// portmap.Published.FilterSeq).
	FilterSeq  int64 `json:"filter_seq,omitempty"`
	HairpinSeq int64 `json:"hairpin_seq,omitempty"`
}

type ingressDoc struct {
	Bridge string `json:"bridge,omitempty"`
	Proto  string `json:"proto"`
	Port   uint16 `json:"port"`
	Target string `json:"target"`
	Refs   int    `json:"refs"`
	Seq    int64  `json:"seq,omitempty"`
}

// userRuleDoc is a DOCKER-USER rule: iptables (authoritative when set),
// else expr (with sets), else nft (see userRuleFromDoc).
type userRuleDoc struct {
	Family   string       `json:"family"`
	IPTables string       `json:"iptables,omitempty"`
	Expr     string       `json:"expr,omitempty"`
	Sets     []anonSetDoc `json:"sets,omitempty"`
	Comment  string       `json:"comment,omitempty"`
	NFT      string       `json:"nft,omitempty"`
}

// Encode returns the state as an indented JSON document,
// {"version":1,...}, ending in a newline. Objects are sorted by
// sequence number, so the same state always gives the same bytes.
func (s State) Encode() ([]byte, error) {
	doc := stateDoc{Version: StateVersion, Networks: []networkDoc{}, Ports: []portDoc{}, Ingress: []ingressDoc{}}
	if s.Daemon != nil {
		up := s.Daemon.UserlandProxy
		doc.Daemon = &daemonDoc{UserlandProxy: &up, IPv6: s.Daemon.IPv6, AllowDirectRouting: s.Daemon.AllowDirectRouting,
			ForwardDrop4: s.Daemon.ForwardDrop4, ForwardDrop6: s.Daemon.ForwardDrop6, Layout: s.Daemon.Layout,
			RawTable4: s.Daemon.RawTable4, RawTable6: s.Daemon.RawTable6}
	}
	nets := slices.Clone(s.Networks)
	sortBySeq(nets, func(n Network) int64 { return n.Seq })
	for _, n := range nets {
		icc, masq := n.ICC, n.Masquerade
		nd := networkDoc{Name: n.Name, Bridge: n.Bridge, Subnets: []string{n.Subnet4.String()}, Internal: n.Internal,
			ICC: &icc, Masquerade: &masq, HostIPv4: addrText(n.HostIPv4), HostIPv6: addrText(n.HostIPv6),
			HostBindingIPv4: addrText(n.HostBindingIPv4), Seq: n.Seq, MasqSeq4: n.MasqSeq4, MasqSeq6: n.MasqSeq6}
		if n.Subnet6.IsValid() {
			nd.Subnets = append(nd.Subnets, n.Subnet6.String())
		}
		doc.Networks = append(doc.Networks, nd)
	}
	ports := slices.Clone(s.Ports)
	sortBySeq(ports, func(p Published) int64 { return p.Seq })
	for _, p := range ports {
		doc.Ports = append(doc.Ports, portDoc{Network: p.Network, Proto: string(p.Proto), HostIP: addrText(p.HostIP),
			HostPort: p.HostPort, ContainerIP: addrText(p.ContainerIP), ContainerPort: p.ContainerPort, Seq: p.Seq,
			FilterSeq: p.FilterSeq, HairpinSeq: p.HairpinSeq})
	}
	ing := slices.Clone(s.Ingress)
	sortBySeq(ing, func(p IngressPublished) int64 { return p.Seq })
	for _, p := range ing {
		doc.Ingress = append(doc.Ingress, ingressDoc{Bridge: p.GwBridge, Proto: string(p.Proto), Port: p.Port.Port,
			Target: addrText(p.Target), Refs: p.Refs, Seq: p.Seq})
	}
	for _, h := range s.IngressHistory {
		doc.IngressHistory = append(doc.IngressHistory, ingressHistoryToDoc(h))
	}
	if s.DockerUser != nil {
		doc.DockerUser = []userRuleDoc{}
	}
	for _, r := range s.DockerUser {
		doc.DockerUser = append(doc.DockerUser, userRuleToDoc(r))
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(b, '\n'), nil
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ParseState parses and validates a state document (see [State.Encode]).
// Every error is a *FieldError naming the bad field by its path in the
// document, such as "networks[1].subnets[0]"; unknown fields are errors.
// Seq may be left out (0): such objects get new sequence numbers, after
// the others, in document order, when the state is programmed.
func ParseState(data []byte) (State, error) {
	return ParseStateContext(context.Background(), data)
}

// ParseStateContext is [ParseState], stopping early with ctx's error when
// ctx is done: validating a large state takes time.
func ParseStateContext(ctx context.Context, data []byte) (State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc stateDoc
	if err := dec.Decode(&doc); err != nil {
		return State{}, jsonError(data, err)
	}
	if dec.More() {
		return State{}, &FieldError{Field: "state", Value: "", Reason: "trailing data after the JSON document"}
	}
	switch {
	case doc.Version == 0:
		return State{}, &FieldError{Field: "version", Value: "", Reason: "missing: not a dnft state document (dnft save writes one)"}
	case doc.Version != StateVersion:
		return State{}, &FieldError{Field: "version", Value: fmt.Sprint(doc.Version), Reason: fmt.Sprintf("unsupported (this dnft reads version %d)", StateVersion)}
	}
	s, err := doc.state()
	if err != nil {
		return State{}, err
	}
	if s, err = s.validate(ctx); err != nil {
		return State{}, err
	}
	return s, nil
}

// jsonError turns a decoding error into a FieldError.
func jsonError(data []byte, err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return &FieldError{Field: "state", Value: fmt.Sprintf("line %d", line), Reason: "not valid JSON: " + se.Error()}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "state"
		}
		return &FieldError{Field: field, Value: te.Value, Reason: "must be a " + te.Type.String()}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Field: "state", Value: "", Reason: "empty or truncated document"}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(name, `"`), Value: "", Reason: "unknown field"}
	}
	return &FieldError{Field: "state", Value: "", Reason: msg}
}

// state converts the document, checking the syntax of every value.
func (doc stateDoc) state() (State, error) {
	var s State
	if doc.Daemon != nil {
		d := DaemonConfig{UserlandProxy: boolOr(doc.Daemon.UserlandProxy, true), IPv6: doc.Daemon.IPv6, AllowDirectRouting: doc.Daemon.AllowDirectRouting,
			ForwardDrop4: doc.Daemon.ForwardDrop4, ForwardDrop6: doc.Daemon.ForwardDrop6, Layout: doc.Daemon.Layout,
			RawTable4: doc.Daemon.RawTable4, RawTable6: doc.Daemon.RawTable6}
		if err := chains.ValidLayout(d.Layout); err != nil {
			return s, &FieldError{Field: "daemon.layout", Value: d.Layout, Reason: "must be absent (classic) or \"stages\""}
		}
		s.Daemon = &d
	}
	for i, nd := range doc.Networks {
		n, err := nd.network(fmt.Sprintf("networks[%d]", i))
		if err != nil {
			return s, err
		}
		s.Networks = append(s.Networks, n)
	}
	for i, pd := range doc.Ports {
		path := fmt.Sprintf("ports[%d]", i)
		p := Published{Network: pd.Network, Seq: pd.Seq, FilterSeq: pd.FilterSeq, HairpinSeq: pd.HairpinSeq, Binding: Binding{Proto: portmap.Proto(strOr(pd.Proto, "tcp")),
			HostPort: pd.HostPort, ContainerPort: pd.ContainerPort}}
		var err error
		if p.HostIP, err = parseAddr(path+".host_ip", pd.HostIP, true); err != nil {
			return s, err
		}
		if p.ContainerIP, err = parseAddr(path+".container_ip", pd.ContainerIP, false); err != nil {
			return s, err
		}
		s.Ports = append(s.Ports, p)
	}
	for i, id := range doc.Ingress {
		path := fmt.Sprintf("ingress[%d]", i)
		t, err := parseAddr(path+".target", id.Target, false)
		if err != nil {
			return s, err
		}
		refs := id.Refs
		if refs == 0 {
			refs = 1
		}
		s.Ingress = append(s.Ingress, IngressPublished{Port: IngressPort{GwBridge: id.Bridge,
			Proto: portmap.Proto(strOr(id.Proto, "tcp")), Port: id.Port, Target: t}, Refs: refs, Seq: id.Seq})
	}
	for i, hd := range doc.IngressHistory {
		h, err := ingressHistoryFromDoc(fmt.Sprintf("ingress_history[%d]", i), hd)
		if err != nil {
			return s, err
		}
		s.IngressHistory = append(s.IngressHistory, h)
	}
	if doc.DockerUser != nil {
		s.DockerUser = []UserRule{}
	}
	for i, rd := range doc.DockerUser {
		r, err := userRuleFromDoc(fmt.Sprintf("docker_user[%d]", i), rd)
		if err != nil {
			return s, err
		}
		s.DockerUser = append(s.DockerUser, r)
	}
	return s, nil
}

func (nd networkDoc) network(path string) (Network, error) {
	n := Network{Seq: nd.Seq, MasqSeq4: nd.MasqSeq4, MasqSeq6: nd.MasqSeq6, NetworkConfig: NetworkConfig{Name: nd.Name, Bridge: nd.Bridge, Internal: nd.Internal,
		ICC: boolOr(nd.ICC, true), Masquerade: boolOr(nd.Masquerade, !nd.Internal)}}
	if len(nd.Subnets) == 0 || len(nd.Subnets) > 2 {
		return n, &FieldError{Field: path + ".subnets", Value: strings.Join(nd.Subnets, ","), Reason: "must list an IPv4 subnet and optionally an IPv6 one"}
	}
	for j, sub := range nd.Subnets {
		p, err := netip.ParsePrefix(sub)
		if err != nil {
			return n, &FieldError{Field: fmt.Sprintf("%s.subnets[%d]", path, j), Value: sub, Reason: "not a CIDR prefix"}
		}
		if j == 0 {
			n.Subnet4 = p
		} else {
			n.Subnet6 = p
		}
	}
	var err error
	for _, a := range []struct {
		name string
		text string
		into *netip.Addr
	}{{"host_ipv4", nd.HostIPv4, &n.HostIPv4}, {"host_ipv6", nd.HostIPv6, &n.HostIPv6}, {"host_binding_ipv4", nd.HostBindingIPv4, &n.HostBindingIPv4}} {
		if *a.into, err = parseAddr(path+"."+a.name, a.text, true); err != nil {
			return n, err
		}
	}
	return n, nil
}

// parseAddr parses an address; "" is the zero address when optional.
func parseAddr(field, s string, optional bool) (netip.Addr, error) {
	if s == "" && optional {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, &FieldError{Field: field, Value: s, Reason: "not an IP address"}
	}
	return a, nil
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func strOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func shortText(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}
