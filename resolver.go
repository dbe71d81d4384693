package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/resolver"
)

// Resolver is where Docker's embedded DNS server listens in a container's
// network namespace (see [resolver.Config]).
type Resolver = resolver.Config

// ProgramResolver programs, in a container's network namespace netns (a
// path such as /proc/PID/ns/net, or a name under /run/netns), the native
// nftables equivalent of the nat rules dockerd's embedded DNS server
// installs there with iptables (DOCKER_OUTPUT, DOCKER_POSTROUTING):
// queries to 127.0.0.11:53 go to the resolver's real UDP and TCP ports,
// and its answers leave from port 53. It is one batch that replaces the
// namespace's `ip dnft` table whole; when that table already holds
// exactly these rules nothing is sent and changed is false.
//
// It refuses the caller's own namespace ("") and any namespace where dnft
// keeps a firewall (Init was run there), whose table it would replace.
func ProgramResolver(ctx context.Context, netns string, r Resolver) (changed bool, err error) {
	if netns == "" {
		return false, &FieldError{Field: "netns", Value: netns, Reason: "name the container's namespace (such as /proc/PID/ns/net)"}
	}
	if err := r.Validate(); err != nil {
		return false, fmt.Errorf("resolver: %w", err)
	}
	c, err := nft.Open(ctx, netns)
	if err != nil {
		return false, fmt.Errorf("resolver: %w", err)
	}
	defer c.Close()
	if _, ok, err := c.ReadSet(ctx, nft.IPv4, chains.SetNetworks); err != nil {
		return false, fmt.Errorf("resolver in %s: %w", netns, err)
	} else if ok {
		return false, &FieldError{Field: "netns", Value: netns, Reason: "dnft's firewall tables are there; resolver rules belong in a container's namespace"}
	}
	want := &nft.Tx{}
	resolver.Objects(want, r)
	objs, err := want.Objects(nil)
	if err != nil {
		return false, fmt.Errorf("resolver: %w", err)
	}
	have, ok, err := c.ReadTable(ctx, nft.IPv4)
	if err != nil {
		return false, fmt.Errorf("resolver in %s: %w", netns, err)
	}
	if ok && len(compareTables(objs, []nft.TableState{have}, want.SetSpecs())) == 0 {
		return false, nil
	}
	tx := &nft.Tx{}
	resolver.Program(tx, r)
	if err := c.Apply(ctx, tx); err != nil {
		return false, fmt.Errorf("resolver in %s: %w", netns, err)
	}
	return true, nil
}
