package dnft

import (
	"context"
	"fmt"

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

// PublishIngress publishes an ingress port in one batch (CONTRACT.md §2,
// ingress): the DNAT in nat prerouting and output before DOCKER's, the
// forward accepts after DOCKER-USER and before isolation, and the
// masquerade of host-originated traffic into the gateway bridge. The first
// publication of a family creates the DOCKER-INGRESS chains, jumps and
// maps. Publishing the same port, protocol, target and gateway again
// increments its reference count, as swarm does.
//
// It is refused with a FieldError, and nothing changes, when the input is
// bad, when the port is held by another ingress target or gateway, or when
// a container binding publishes the same host port and protocol on any
// address. When the port is the first IPv4 one on its gateway bridge it
// sets route_localnet=1 on the bridge, if the bridge exists (as Docker
// does, once), so that 127.0.0.1:PORT reaches the sandbox.
//
// Its reads are the cached daemon record and binding index (reloaded only
// when someone else changed the ruleset) and the port's ingress-dnat
// element (see [ingress.Publish] and [ingress.ElementGetter]).
func (fw *Firewall) PublishIngress(ctx context.Context, p IngressPort) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	defer func() { fw.portOps++ }()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("publish ingress: %w", err)
	}
	defer unlock()
	var (
		np ingress.Port
		ch ingress.Change
	)
	err = fw.retry(func() error {
		d, nets, err := fw.state(ctx)
		if err != nil {
			return fmt.Errorf("publish ingress: %w", err)
		}
		np, err = ingress.Normalize(d, p)
		if err != nil {
			return fmt.Errorf("publish ingress: %w", err)
		}
		if err := fw.checkIngressPort(ctx, d, np); err != nil {
			return err
		}
		tx := &nft.Tx{}
		ch, err = ingress.Publish(ctx, fw.conn, tx, np, fw.seq())
		if err != nil {
			return fmt.Errorf("publish ingress: %w", err)
		}
		if ch.NewGateway {
			newGatewayYields(tx, d, nets, np.Family(), np.GwBridge, ch.Published.Seq)
		}
		// Ingress changes no network and no container binding: the view
		// stays valid, with the family's ingress maps now present.
		fam := np.Family()
		if err := fw.commit(ctx, tx, func(v *view) { v.ingress[famIndex(fam)] = 2 }); err != nil {
			return fmt.Errorf("publish ingress %s: %w", np, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ch.NewGateway && np.Target.Is4() {
		if err := fw.routeLocalnet(gatewayName(np.GwBridge)); err != nil {
			return fmt.Errorf("publish ingress %s: %w", np, err)
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

// UnpublishIngress removes one reference of an ingress port, in one batch,
// in every family where Port/Proto is published (only the family of
// Target when it is set). GwBridge and Target are optional; when set they
// must match the publication. The last reference removes the port; the
// last port of a family removes the family's DOCKER-INGRESS chains, jumps,
// masquerade rule and maps. A port that is not published is refused with
// a FieldError. route_localnet is left as it is, as Docker leaves it.
func (fw *Firewall) UnpublishIngress(ctx context.Context, p IngressPort) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("unpublish ingress: %w", err)
	}
	defer unlock()
	return fw.retry(func() error {
		d, nets, err := fw.state(ctx)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		np, err := ingress.NormalizeUnpublish(d, p)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		before, err := fw.ingressBefore(ctx, d, nets)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		tx := &nft.Tx{}
		done, err := ingress.Unpublish(ctx, fw.conn, tx, d, np)
		if err != nil {
			return fmt.Errorf("unpublish ingress: %w", err)
		}
		unpublishYields(tx, d, nets, before, done)
		// The last port of a family removes its ingress maps: find out
		// again when needed.
		if err := fw.commit(ctx, tx, func(v *view) { v.ingress = [2]uint8{} }); err != nil {
			return fmt.Errorf("unpublish ingress %s: %w", ingress.PortProto(np.Port, np.Proto), err)
		}
		return nil
	})
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
