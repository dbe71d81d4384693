package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// IngressPort is a swarm ingress publication (see [ingress.Port]): packets
// to any local address on Port/Proto go to Target:Port on GwBridge
// ("" means docker_gwbridge).
type IngressPort = ingress.Port

// IngressPublished is an ingress publication as read back from the kernel,
// with its reference count (see [ingress.Published]).
type IngressPublished = ingress.Published

// PublishIngress publishes ingress ports (p and more) in one batch
// (CONTRACT.md §2, ingress): the DNAT in nat prerouting and output before
// DOCKER's, the forward accepts after DOCKER-USER and before isolation,
// and the masquerade of host-originated traffic into the gateway bridge.
// The first publication of a family creates the DOCKER-INGRESS chains,
// jumps and maps. Publishing the same port, protocol, target and gateway
// again increments its reference count, as swarm does.
//
// It is refused with a FieldError, and nothing changes, when the input is
// bad, when a port is held by another ingress target or gateway, or when
// a container binding publishes the same host port and protocol on any
// address. When a port is the first IPv4 one on its gateway bridge it
// sets route_localnet=1 on the bridge, if the bridge exists (as Docker
// does), so that 127.0.0.1:PORT reaches the sandbox;
// [Firewall.UnpublishIngress] turns it off again with the gateway's last
// port, unless a network needs it.
//
// Its reads are the cached daemon record and binding index (reloaded only
// when someone else changed the ruleset) and each port's ingress-dnat
// element (see [ingress.Publish] and [ingress.ElementGetter]); several
// ports also read the ingress chains and maps and the four base chains
// they hook into.
func (fw *Firewall) PublishIngress(ctx context.Context, p IngressPort, more ...IngressPort) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	defer func() { fw.portOps++ }()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("publish ingress: %w", err)
	}
	defer unlock()
	var gateways []string
	err = fw.retry(func() error {
		gateways = nil
		d, nets, err := fw.state(ctx)
		if err != nil {
			return fmt.Errorf("publish ingress: %w", err)
		}
		ports := append([]IngressPort{p}, more...)
		for i, p := range ports {
			np, err := ingress.Normalize(d, p)
			if err != nil {
				return fmt.Errorf("publish ingress: %w", err)
			}
			if err := checkGateway(nets, np.GwBridge); err != nil {
				return fmt.Errorf("publish ingress: %w", err)
			}
			if err := fw.checkIngressPort(ctx, d, np); err != nil {
				return err
			}
			ports[i] = np
		}
		tx := &nft.Tx{}
		// One port reads the kernel through single-element gets; several
		// are queued on one transaction, each reading what the ones before
		// queued.
		var r ingress.Reader = fw.conn
		if len(ports) > 1 {
			r = newTxReader(tx, func() ([]nft.TableState, error) { return fw.ingressBase(ctx) })
		}
		for _, np := range ports {
			ch, err := ingress.Publish(ctx, r, tx, np, fw.seq())
			if err != nil {
				return fmt.Errorf("publish ingress %s: %w", np, err)
			}
			if ch.NewGateway {
				newGatewayYields(tx, d, nets, np.Family(), np.GwBridge, ch.Published.Seq)
				if np.Target.Is4() {
					gateways = append(gateways, gatewayName(np.GwBridge))
				}
			}
		}
		// Ingress changes no network and no container binding: the view
		// stays valid, with the families' ingress maps now present.
		return fw.commit(ctx, tx, func(v *view) {
			for _, np := range ports {
				v.ingress[famIndex(np.Family())] = 2
			}
		})
	})
	if err != nil {
		return err
	}
	for _, gw := range gateways {
		if _, err := fw.applyLinks(ctx, linkWant{gw: {RouteLocalnet: true}}); err != nil {
			return fmt.Errorf("publish ingress on %s: %w", gw, err)
		}
	}
	return nil
}

// ingressBase reads what ingress publications read of dnft's tables: the
// ingress sets and chains and the four base chains they hook into, in
// every IP family that has a table (a few rules, and an element per
// ingress port).
func (fw *Firewall) ingressBase(ctx context.Context) ([]nft.TableState, error) {
	var out []nft.TableState
	for _, f := range nft.Families {
		ok, err := fw.conn.TableExists(ctx, f)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		t := nft.TableState{Family: f}
		for _, name := range []string{chains.NATPrerouting, chains.NATOutput, chains.FilterForward, chains.NATPostrouting, ingress.NATChain, ingress.FilterChain} {
			c, ok, err := fw.conn.ReadChain(ctx, f, name)
			if err != nil {
				return nil, err
			}
			if ok {
				t.Chains = append(t.Chains, c)
			}
		}
		for _, name := range []string{ingress.MapDNAT, ingress.SetPorts, ingress.SetReplies, ingress.SetGateways} {
			s, ok, err := fw.conn.ReadSet(ctx, f, name)
			if err != nil {
				return nil, err
			}
			if ok {
				t.Sets = append(t.Sets, s)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// localnetOff turns route_localnet off on the gateways whose last IPv4
// ingress port a commit removed (ch from ingress.Unpublish), when the
// bridge exists and no network needs it (see [chains.Links]).
func (fw *Firewall) localnetOff(ch []ingress.Change, d DaemonConfig, nets []Network) error {
	need := chains.Links(d, nets, nil)
	for _, c := range ch {
		if !c.GatewayGone || !c.Target.Is4() {
			continue
		}
		gw := gatewayName(c.GwBridge)
		if need[gw].RouteLocalnet {
			continue
		}
		key := "net/ipv4/conf/" + gw + "/route_localnet"
		if v, ok, err := fw.conn.Sysctl(key); err != nil || !ok || v == "0" {
			if err != nil {
				return err
			}
			continue
		}
		if err := fw.conn.SetSysctl(key, "0"); err != nil {
			return err
		}
	}
	return nil
}

// checkIngressPort refuses an ingress port that a container binding
// publishes on any address, in either family. The cached index, or the
// kernel's elements (see [Firewall.bindings]), answer without listing
// the bindings.
func (fw *Firewall) checkIngressPort(ctx context.Context, d DaemonConfig, np ingress.Port) error {
	x, err := fw.bindings(ctx, 1)
	if err != nil {
		return fmt.Errorf("publish ingress %s: %w", np, err)
	}
	b, ok, err := x.PortHolder(ctx, d, np.Proto, np.Port)
	if err != nil {
		return fmt.Errorf("publish ingress %s: %w", np, err)
	}
	if ok {
		if err := ingress.CheckPort(np, []portmap.Published{b}); err != nil {
			return fmt.Errorf("publish ingress: %w", err)
		}
	}
	return nil
}

// checkGateway refuses an ingress gateway bridge that is the bridge of a
// container network, other than Docker's own gateway network
// ([ingress.DefaultGateway], which swarm creates as a bridge network so
// that its sandboxes reach the host): ingress turns route_localnet on on
// its gateway, which would let that network's containers reach the
// host's services bound to 127.0.0.1.
func checkGateway(nets []Network, gw string) error {
	gw = gatewayName(gw)
	if gw == ingress.DefaultGateway {
		return nil
	}
	for _, n := range nets {
		if n.Bridge == gw {
			return &FieldError{Field: "bridge", Value: gw,
				Reason: fmt.Sprintf("is the bridge of network %q: an ingress gateway is %s or a bridge of its own", n.Name, ingress.DefaultGateway)}
		}
	}
	return nil
}

// UnpublishIngress removes one reference of an ingress port, in one batch,
// in every family where Port/Proto is published (only the family of
// Target when it is set). GwBridge and Target are optional; when set they
// must match the publication. The last reference removes the port; the
// last port of a family removes the family's DOCKER-INGRESS chains, jumps,
// masquerade rule and maps. A port that is not published is refused with
// a FieldError. The last IPv4 port of a gateway bridge turns
// route_localnet off on it again, unless a network needs it: dnft turned
// it on for ingress, and left on, containers on that bridge could reach
// the host's services bound to 127.0.0.1.
func (fw *Firewall) UnpublishIngress(ctx context.Context, p IngressPort) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("unpublish ingress: %w", err)
	}
	defer unlock()
	var (
		done []ingress.Change
		d    DaemonConfig
		nets []Network
	)
	err = fw.retry(func() error {
		var err error
		d, nets, err = fw.state(ctx)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		np, err := ingress.NormalizeUnpublish(d, p)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		before, hist, err := fw.ingressBefore(ctx, d, nets)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		tx := &nft.Tx{}
		done, err = ingress.Unpublish(ctx, fw.conn, tx, d, np)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		was := make([]IngressPublished, len(done))
		for i, c := range done {
			was[i] = c.Published
		}
		netsAfter := nets
		if !d.UserlandProxy {
			// A gateway that goes may leave its masquerade to a network.
			netsAfter = gatewayGoneTwins(tx, d, nets, goneGateways(done))
		}
		unpublishYields(tx, d, nets, netsAfter, before, hist, was)
		// The last port of a family removes its ingress maps: find out
		// again when needed.
		if err := fw.commit(ctx, tx, func(v *view) { v.ingress, v.nets = [2]uint8{}, netsAfter }); err != nil {
			return fmt.Errorf("unpublish ingress %s: %w", ingress.PortProto(np.Port, np.Proto), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := fw.localnetOff(done, d, nets); err != nil {
		return fmt.Errorf("unpublish ingress: %w", err)
	}
	return nil
}

// Ingress lists the ingress publications of every family, oldest first,
// with their reference counts and DNAT counters, as read back from the
// kernel.
func (fw *Firewall) Ingress(ctx context.Context) ([]IngressPublished, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, _, err := fw.currentState(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := ingress.List(ctx, fw.conn, d)
	if err != nil {
		return nil, fmt.Errorf("list ingress: %w", err)
	}
	return ps, nil
}
