package dnft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Validate checks a state as a whole: every network on its own and
// against the older ones, every binding against its network and the
// other bindings, every ingress publication, every DOCKER-USER rule. The
// error is a *FieldError whose Field is the path of the bad value in the
// JSON document, such as "networks[1].subnet". Its cost is linear in the
// size of the state (n log n for the networks' subnets).
func (s State) Validate() error {
	_, err := s.validate(context.Background())
	return err
}

// validateEvery is how many objects validation checks between two looks
// at its context.
const validateEvery = 1024

// validate is Validate, returning the state normalised: bindings and
// ingress ports in normal form, sorted by Seq. It stops early, with
// ctx's error, when ctx is done.
func (s State) validate(ctx context.Context) (State, error) {
	out := State{Daemon: s.Daemon}
	if s.Daemon == nil {
		switch {
		case len(s.Networks) > 0:
			return out, &FieldError{Field: "daemon", Reason: "missing, but the state has networks"}
		case len(s.Ingress) > 0:
			return out, &FieldError{Field: "daemon", Reason: "missing, but the state has ingress ports"}
		case len(s.DockerUser) > 0:
			return out, &FieldError{Field: "daemon", Reason: "missing, but the state has DOCKER-USER rules"}
		}
		if s.DockerUser != nil {
			out.DockerUser = []UserRule{}
		}
		return out, nil
	}
	d := *s.Daemon
	d.IPForward, d.IPForwardNoDrop = false, false
	if d.ForwardDrop6 && !d.IPv6 {
		return out, &FieldError{Field: "daemon.forward_drop_ipv6", Value: "true", Reason: "the daemon has no IPv6"}
	}
	out.Daemon = &d
	var err error
	if out.Networks, err = validNetworks(ctx, d, s.Networks); err != nil {
		return out, err
	}
	for _, n := range out.Networks {
		// Creating it used iptables' raw table (the view keeps it).
		d = chains.RawUse(d, n.NetworkConfig)
	}
	var x *portmap.Index
	if out.Ports, x, err = validPorts(ctx, d, out.Networks, s.Ports); err != nil {
		return out, err
	}
	if out.Ingress, err = validIngress(ctx, d, out.Networks, x, s.Ingress); err != nil {
		return out, err
	}
	if out.IngressHistory, err = validIngressHistory(d, out.Ingress, s.IngressHistory); err != nil {
		return out, err
	}
	if out.DockerUser, err = validUserRules(d, s.DockerUser); err != nil {
		return out, err
	}
	return out, nil
}

// every returns ctx's error every validateEvery calls (i counts them).
func every(ctx context.Context, i int) error {
	if i%validateEvery == 0 {
		return ctx.Err()
	}
	return nil
}

// jsonFields maps the field names of the library's FieldErrors to the
// keys of the state document.
var jsonFields = map[string]string{
	"subnet":                       "subnets",
	"host-port":                    "host_port",
	"container-ip":                 "container_ip",
	"container-port":               "container_port",
	"com.docker.network.host_ipv4": "host_ipv4",
	"com.docker.network.host_ipv6": "host_ipv6",
	"com.docker.network.bridge.host_binding_ipv4": "host_binding_ipv4",
}

// at puts err under path: a FieldError gets path prefixed to its field
// (named as in the state document).
func at(path string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		f := path
		if fe.Field != "" {
			name := fe.Field
			if j, ok := jsonFields[name]; ok {
				name = j
			}
			f += "." + name
		}
		return &FieldError{Field: f, Value: fe.Value, Reason: fe.Reason}
	}
	return &FieldError{Field: path, Reason: err.Error()}
}

// validNetworks checks every network on its own, then all of them
// together (names, bridges and subnets unique) in O(n log n); errors name
// the network by its position in the document.
func validNetworks(ctx context.Context, d DaemonConfig, in []Network) ([]Network, error) {
	for i, n := range in {
		if err := every(ctx, i); err != nil {
			return nil, err
		}
		path := fmt.Sprintf("networks[%d]", i)
		if err := chains.CheckNew(n.NetworkConfig, nil); err != nil {
			return nil, at(path, err)
		}
		if n.Subnet6.IsValid() && !d.IPv6 {
			return nil, &FieldError{Field: path + ".subnets", Value: n.Subnet6.String(), Reason: "IPv6 is not enabled (daemon.ipv6)"}
		}
		if n.Seq < 0 {
			return nil, &FieldError{Field: path + ".seq", Value: fmt.Sprint(n.Seq), Reason: "must not be negative"}
		}
		for _, m := range []struct {
			field string
			v     int64
		}{{"host_masquerade_seq_ipv4", n.MasqSeq4}, {"host_masquerade_seq_ipv6", n.MasqSeq6}} {
			if m.v != 0 && (m.v < 0 || m.v >= n.Seq) {
				return nil, &FieldError{Field: path + "." + m.field, Value: fmt.Sprint(m.v), Reason: "must be positive and below the network's seq"}
			}
		}
		if !chains.RecordFits(n) {
			return nil, &FieldError{Field: path + ".name", Value: n.Name, Reason: fmt.Sprintf("the network's record, with its history, takes more than the %d bytes of an element comment", chains.MaxRecordLen)}
		}
	}
	if i, err := chains.Conflict(in); err != nil {
		return nil, at(fmt.Sprintf("networks[%d]", i), err)
	}
	out := slices.Clone(in)
	sortBySeq(out, func(n Network) int64 { return n.Seq })
	return out, nil
}

// validPorts checks every binding against its network and the bindings
// before it, through an index (O(1) each), which it returns.
func validPorts(ctx context.Context, d DaemonConfig, nets []Network, in []Published) ([]Published, *portmap.Index, error) {
	byName := make(map[string]Network, len(nets))
	for _, n := range nets {
		byName[n.Name] = n
	}
	x := portmap.NewIndex(nil)
	out := make([]Published, 0, len(in))
	for i, p := range in {
		if err := every(ctx, i); err != nil {
			return nil, nil, err
		}
		path := fmt.Sprintf("ports[%d]", i)
		n, ok := byName[p.Network]
		if !ok {
			return nil, nil, &FieldError{Field: path + ".network", Value: p.Network, Reason: "no such network in the state"}
		}
		if p.Seq < 0 {
			return nil, nil, &FieldError{Field: path + ".seq", Value: fmt.Sprint(p.Seq), Reason: "must not be negative"}
		}
		// History: the filter accept moves up the chain, to an older
		// binding's place; the hairpin down, to a newer one's.
		switch {
		case p.FilterSeq != 0 && (p.Seq == 0 || p.FilterSeq < 0 || p.FilterSeq >= p.Seq):
			return nil, nil, &FieldError{Field: path + ".filter_seq", Value: fmt.Sprint(p.FilterSeq), Reason: "must be positive and below the binding's seq"}
		case p.HairpinSeq != 0 && (p.Seq == 0 || p.HairpinSeq <= p.Seq):
			return nil, nil, &FieldError{Field: path + ".hairpin_seq", Value: fmt.Sprint(p.HairpinSeq), Reason: "must be above the binding's seq"}
		}
		norm, err := x.CheckPublish(d, n, []Binding{p.Binding})
		if err != nil {
			return nil, nil, at(path, err)
		}
		x.Add(n.Name, norm, p.Seq)
		out = append(out, Published{Network: n.Name, Binding: norm[0], Seq: p.Seq, FilterSeq: p.FilterSeq, HairpinSeq: p.HairpinSeq})
	}
	sortBySeq(out, func(p Published) int64 { return p.Seq })
	return out, x, nil
}

// validIngress checks every ingress publication: on its own, against the
// networks (its gateway is no container network's bridge), against the
// bindings (x: no binding holds its port), and against the others.
func validIngress(ctx context.Context, d DaemonConfig, nets []Network, x *portmap.Index, in []IngressPublished) ([]IngressPublished, error) {
	type key struct {
		f     nft.Family
		proto portmap.Proto
		port  uint16
	}
	seen := map[key]int{}
	var out []IngressPublished
	for i, p := range in {
		if err := every(ctx, i); err != nil {
			return nil, err
		}
		path := fmt.Sprintf("ingress[%d]", i)
		np, err := ingress.Normalize(d, p.Port)
		if err != nil {
			return nil, at(path, err)
		}
		if err := checkGateway(nets, np.GwBridge); err != nil {
			return nil, at(path, err)
		}
		if b, ok := x.PortHolder(np.Proto, np.Port); ok {
			if err := ingress.CheckPort(np, []Published{b}); err != nil {
				return nil, at(path, err)
			}
		}
		if p.Refs < 1 {
			return nil, &FieldError{Field: path + ".refs", Value: fmt.Sprint(p.Refs), Reason: "must be at least 1"}
		}
		if p.Seq < 0 {
			return nil, &FieldError{Field: path + ".seq", Value: fmt.Sprint(p.Seq), Reason: "must not be negative"}
		}
		k := key{np.Family(), np.Proto, np.Port}
		if j, dup := seen[k]; dup {
			return nil, &FieldError{Field: path + ".port", Value: ingress.PortProto(np.Port, np.Proto), Reason: fmt.Sprintf("published twice in the family (also ingress[%d])", j)}
		}
		seen[k] = i
		out = append(out, IngressPublished{Port: np, Refs: p.Refs, Seq: p.Seq})
	}
	sortBySeq(out, func(p IngressPublished) int64 { return p.Seq })
	return out, nil
}

// baseChains are the base chains of dnft's tables: a rule cannot jump
// to them.
var baseChains = []string{chains.RawPrerouting, chains.NATPrerouting, chains.NATOutput, chains.NATPostrouting, chains.FilterForward}

func validUserRules(d DaemonConfig, in []UserRule) ([]UserRule, error) {
	if in == nil {
		return nil, nil
	}
	in = slices.Clone(in)
	for i, r := range in {
		path := fmt.Sprintf("docker_user[%d]", i)
		switch {
		case r.Family != nft.IPv4 && r.Family != nft.IPv6:
			return nil, &FieldError{Field: path + ".family", Value: fmt.Sprint(uint8(r.Family)), Reason: "must be ip or ip6"}
		case !slices.Contains(d.Families(), r.Family):
			return nil, &FieldError{Field: path + ".family", Value: r.Family.String(), Reason: "IPv6 is not enabled (daemon.ipv6)"}
		case len(r.Comment) > 250 || strings.ContainsRune(r.Comment, 0):
			return nil, &FieldError{Field: path + ".comment", Value: r.Comment, Reason: "must be at most 250 bytes, without NUL"}
		}
		canon, err := nft.CanonicalRule(nft.RawRule{Family: r.Family, Exprs: r.Expr, Sets: r.Sets})
		if err != nil {
			return nil, &FieldError{Field: path + ".expr", Value: shorten(r.Expr), Reason: err.Error()}
		}
		refs, err := canon.References()
		if err != nil {
			return nil, &FieldError{Field: path + ".expr", Value: shorten(r.Expr), Reason: err.Error()}
		}
		for _, c := range refs.Chains {
			switch {
			case c == chains.DockerUser:
				return nil, &FieldError{Field: path, Value: r.Comment, Reason: "jumps to " + chains.DockerUser + " itself: a loop"}
			case slices.Contains(baseChains, c):
				return nil, &FieldError{Field: path, Value: r.Comment, Reason: fmt.Sprintf("jumps to the base chain %s", c)}
			}
		}
		in[i].Expr, in[i].Sets = canon.Exprs, canon.Sets
	}
	// IPv4's rules first, then IPv6's, each in order.
	out := []UserRule{}
	for _, f := range nft.Families {
		for _, r := range in {
			if r.Family == f {
				out = append(out, r)
			}
		}
	}
	return out, nil
}
