package dnft

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Binding is one published port (see [portmap.Binding]).
type Binding = portmap.Binding

// Proto is a transport protocol ports are published for (see
// [portmap.Proto]).
type Proto = portmap.Proto

// The protocols ports can be published for.
const (
	TCP  = portmap.TCP
	UDP  = portmap.UDP
	SCTP = portmap.SCTP
)

// Published is a published port as read back from the kernel.
type Published = portmap.Published

// PortSpec is a parsed `-p` option (see [portmap.Spec] and [ParsePortSpec]).
type PortSpec = portmap.Spec

// ParsePortSpec parses Docker's `-p` syntax,
// [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO] (see
// [portmap.ParseSpec]). Errors are FieldErrors naming the spec.
func ParsePortSpec(s string) (PortSpec, error) { return portmap.ParseSpec(s) }

// Publish publishes ports of containers on a network, in one batch for
// both families: DNAT from the host address and port, the filter accept,
// the hairpin masquerade and, for a loopback host address in protected
// mode, the drop of packets from outside (CONTRACT.md §2, port publish).
// Every binding is validated first — also against the ports already
// published on every network and the ingress ports — and nothing is sent
// if one is bad.
//
// A zero HostIP means the network's default binding address for IPv4
// (com.docker.network.bridge.host_binding_ipv4) or else all addresses;
// 0.0.0.0 and :: mean all addresses. Every binding needs a host port: to
// have one allocated, use [Firewall.PublishSpecs].
//
// After the commit, conntrack entries whose original destination is a
// binding's container address, and UDP entries to a published UDP host
// port, are deleted (as Docker does), so that a flow seen before follows
// the new rules; failures there go to the warn function
// ([Firewall.SetWarnFunc]).
//
// Its cost does not grow with the number of published ports: the bindings
// are checked against the Firewall's index (see [Firewall]).
func (fw *Firewall) Publish(ctx context.Context, network string, bs []Binding) error {
	_, err := fw.publish(ctx, network, len(bs), func(context.Context, chains.DaemonConfig, chains.Network, portmap.Bindings) ([]Binding, error) {
		return bs, nil
	})
	return err
}

// PublishSpecs publishes the `-p` specs for the container address c on
// a network, in one batch, like [Firewall.Publish], and returns the
// resulting bindings, normalised, in spec order. A spec whose host port is
// left out gets the lowest free port of 32768-60999 (Docker's ephemeral
// range), and one with a host range and a single container port the
// lowest free port of that range (see [portmap.Index.Resolve]).
//
// The bindings are for c's address family only: to publish a dual-stack
// container on both families, call it once per address.
func (fw *Firewall) PublishSpecs(ctx context.Context, network string, c netip.Addr, specs []PortSpec) ([]Binding, error) {
	return fw.publish(ctx, network, specCount(specs), func(ctx context.Context, d chains.DaemonConfig, n chains.Network, x portmap.Bindings) ([]Binding, error) {
		// Allocation skips host ports that an ingress port holds.
		var herr error
		held := func(proto portmap.Proto, port uint16) bool {
			if herr != nil {
				return true
			}
			p, err := ingress.Held(ctx, ingressReader{fw}, d, proto, port)
			if err != nil {
				herr = fmt.Errorf("read ingress ports: %w", err)
			}
			return p != nil || err != nil
		}
		bs, err := x.Resolve(ctx, d, n, c, specs, held)
		if herr != nil {
			return nil, herr
		}
		return bs, err
	})
}

// publish is Publish and PublishSpecs: resolve turns the request into
// bindings against the current state.
func (fw *Firewall) publish(ctx context.Context, network string, size int, resolve portResolver) ([]Binding, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	defer func() { fw.portOps++ }()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish on %s: %w", network, err)
	}
	defer unlock()
	var (
		d    chains.DaemonConfig
		n    chains.Network
		norm []Binding
	)
	err = fw.retry(func() error {
		var (
			x   portmap.Bindings
			err error
		)
		d, n, x, err = fw.portState(ctx, network, size)
		if err != nil {
			return err
		}
		bs, err := resolve(ctx, d, n, x)
		if err != nil {
			return err
		}
		norm, err = x.CheckPublish(ctx, d, n, bs)
		if err != nil || len(norm) == 0 {
			return err
		}
		if err := ingress.CheckBindings(ctx, ingressReader{fw}, d, norm); err != nil {
			return err
		}
		seq := fw.seq()
		// Binding i is recorded with seq+i: keep later operations after them.
		fw.lastSeq = max(fw.lastSeq, seq+int64(len(norm))-1)
		tx := &nft.Tx{}
		if err := x.Publish(ctx, tx, d, n, norm, seq); err != nil {
			return err
		}
		return fw.commit(ctx, tx, func(v *view) {
			if v.idx != nil {
				v.idx.Add(n.Name, norm, seq)
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("publish on %s: %w", network, fw.layoutErr(ctx, d, err))
	}
	if len(norm) == 0 {
		return norm, nil
	}
	fw.clearConntrack(ctx, norm)
	if !d.UserlandProxy {
		// DNAT of 127.0.0.1 to a container needs route_localnet on the
		// bridge; the bridge may have appeared after the network.
		if err := fw.routeLocalnet(n.Bridge); err != nil {
			return norm, fmt.Errorf("publish on %s: %w", network, err)
		}
	}
	return norm, nil
}

// Unpublish removes published ports of a network, in one batch: exactly
// the elements Publish added for them (elements that another binding
// still needs stay). Each binding must be published on the network as
// given (a zero HostIP is resolved as in Publish); nothing is sent if one
// is not. Conntrack entries are cleaned up as after Publish, so that a
// UDP flow stops reaching the container.
func (fw *Firewall) Unpublish(ctx context.Context, network string, bs []Binding) error {
	_, err := fw.unpublish(ctx, network, len(bs), func(context.Context, chains.DaemonConfig, chains.Network, portmap.Bindings) ([]Binding, error) {
		return bs, nil
	})
	return err
}

// UnpublishSpecs removes the published ports of the container address c
// that the `-p` specs name, in one batch, and returns the removed
// bindings. A spec with as many host ports as container ports names
// exactly those bindings; one without a host port every binding of its
// container ports on its host address (the network's default when left
// out); one with a host range and a single container port the bindings
// of that port whose host port is in the range (see
// [portmap.Index.ResolveUnpublish]).
func (fw *Firewall) UnpublishSpecs(ctx context.Context, network string, c netip.Addr, specs []PortSpec) ([]Binding, error) {
	return fw.unpublish(ctx, network, specCount(specs), func(ctx context.Context, d chains.DaemonConfig, n chains.Network, x portmap.Bindings) ([]Binding, error) {
		return x.ResolveUnpublish(ctx, d, n, c, specs)
	})
}

// portResolver turns the request of a port operation into bindings against
// the current state.
type portResolver func(context.Context, chains.DaemonConfig, chains.Network, portmap.Bindings) ([]Binding, error)

func (fw *Firewall) unpublish(ctx context.Context, network string, size int, resolve portResolver) ([]Binding, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	defer func() { fw.portOps++ }()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return nil, fmt.Errorf("unpublish on %s: %w", network, err)
	}
	defer unlock()
	var norm []Binding
	err = fw.retry(func() error {
		d, n, x, err := fw.portState(ctx, network, size)
		if err != nil {
			return err
		}
		bs, err := resolve(ctx, d, n, x)
		if err != nil {
			return err
		}
		norm, err = x.CheckUnpublish(ctx, d, n, bs)
		if err != nil || len(norm) == 0 {
			return err
		}
		tx := &nft.Tx{}
		if err := x.Unpublish(ctx, tx, d, n, norm); err != nil {
			return err
		}
		return fw.commit(ctx, tx, func(v *view) {
			if v.idx != nil {
				v.idx.Remove(n.Name, norm)
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("unpublish on %s: %w", network, fw.layoutErr(ctx, fw.v.d, err))
	}
	fw.clearConntrack(ctx, norm)
	return norm, nil
}

// Ports lists the published ports of every network, oldest first, with
// the counters of their DNAT elements, as read back from the kernel (a
// full read: its cost grows with the number of ports).
func (fw *Firewall) Ports(ctx context.Context) ([]Published, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, _, err := fw.currentState(ctx)
	if err != nil {
		return nil, err
	}
	return portmap.ReadBindings(ctx, fw.conn, d)
}

// portState returns the daemon configuration, the named network and the
// published bindings (see [Firewall.bindings]) for a port operation on
// about size bindings.
func (fw *Firewall) portState(ctx context.Context, network string, size int) (chains.DaemonConfig, chains.Network, portmap.Bindings, error) {
	if err := fw.fresh(ctx); err != nil {
		return chains.DaemonConfig{}, chains.Network{}, portmap.Bindings{}, err
	}
	d := fw.v.d
	if !fw.v.initialized {
		return d, chains.Network{}, portmap.Bindings{}, ErrNotInitialized
	}
	n, ok := chains.Find(fw.v.nets, network)
	if !ok {
		return d, n, portmap.Bindings{}, &FieldError{Field: "network", Value: network, Reason: "no such network"}
	}
	x, err := fw.bindings(ctx, size)
	return d, n, x, err
}

// specCount is how many bindings specs name at most.
func specCount(specs []PortSpec) int {
	n := 0
	for _, sp := range specs {
		n += sp.ContainerPorts.Len()
	}
	return n
}

// layoutErr explains a batch refused for a missing set: tables that an
// older dnft set up lack the bookkeeping sets of published ports.
func (fw *Firewall) layoutErr(ctx context.Context, d chains.DaemonConfig, err error) error {
	if !nft.IsNotFound(err) {
		return err
	}
	for _, f := range d.Families() {
		for _, name := range []string{portmap.SetTargets, portmap.SetHostPorts, portmap.SetPositions} {
			if ok, herr := fw.conn.HasSet(ctx, f, name); herr == nil && !ok {
				return fmt.Errorf("%w: dnft's %s table has no set %s (an older dnft set it up): run dnft repair", err, f, name)
			}
		}
	}
	return err
}

// clearConntrack deletes the conntrack entries that would keep traffic on
// the old path after bs were published or unpublished: those whose
// original destination is a container address of bs, and UDP entries
// whose original destination port is a UDP host port of bs (Docker's
// clearConntrackEntries). Errors go to the warn function: the commit
// stands either way.
func (fw *Firewall) clearConntrack(ctx context.Context, bs []Binding) {
	if len(bs) == 0 {
		return
	}
	// Most namespaces have no entry at all: then there is nothing to
	// look for (and no conntrack socket to open).
	if n, err := fw.conn.ConntrackCount(ctx); err == nil && n == 0 {
		return
	}
	if fw.ct == nil {
		ct, err := fw.conn.OpenConntrack()
		if err != nil {
			fw.warnf(fmt.Errorf("conntrack cleanup: %w", err))
			return
		}
		fw.ct = ct
	}
	for f, flt := range conntrackFilters(bs) {
		if _, err := fw.ct.Delete(ctx, f, flt); err != nil {
			fw.warnf(fmt.Errorf("conntrack cleanup: %w", err))
		}
	}
}

// conntrackFilters groups the container addresses and UDP host ports of
// bs by family, each once.
func conntrackFilters(bs []Binding) map[nft.Family]nft.ConntrackFilter {
	out := map[nft.Family]nft.ConntrackFilter{}
	seen := map[any]bool{}
	for _, b := range bs {
		f := nft.IPv4
		if !b.ContainerIP.Unmap().Is4() {
			f = nft.IPv6
		}
		flt := out[f]
		if a := b.ContainerIP.Unmap(); !seen[a] {
			seen[a] = true
			flt.OrigDst = append(flt.OrigDst, a)
		}
		if b.Proto == portmap.UDP {
			pp := nft.ProtoPort{Proto: b.Proto.Number(), Port: b.HostPort}
			if k := [2]any{f, pp}; !seen[k] {
				seen[k] = true
				flt.OrigDstPorts = append(flt.OrigDstPorts, pp)
			}
		}
		out[f] = flt
	}
	return out
}
