package dnft

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
)

// The kernel settings that dnft keeps on bridges and their ports
// ([chains.LinkSettings]) live outside nftables: in sysctls and in the
// links themselves. They are applied when a network is created, by
// [Firewall.FollowLinks] whenever a link appears, and by Repair; Check
// reports a wrong value as drift. A bridge that does not exist is not
// drift: a runtime creates its bridges when it likes.

// linkWant is what dnft keeps on the namespace's links, by bridge name.
type linkWant map[string]chains.LinkSettings

// stateLinks is what a state wants of the links.
func stateLinks(s State) linkWant {
	if s.Daemon == nil {
		return nil
	}
	var gws []string
	for _, p := range s.Ingress {
		if p.Target.Is4() {
			gws = append(gws, gatewayName(p.GwBridge))
		}
	}
	return chains.Links(*s.Daemon, s.Networks, gws)
}

func gatewayName(gw string) string {
	if gw == "" {
		return ingress.DefaultGateway
	}
	return gw
}

// linkFix is one difference between a link and what dnft keeps on it,
// with the change that removes it.
type linkFix struct {
	finding Finding
	apply   func(context.Context) error
}

// linkFixes compares the namespace's links with want: only the links
// named in want (bridges) and their ports; a missing bridge is fine.
func (fw *Firewall) linkFixes(ctx context.Context, want linkWant, links []nft.Link) ([]linkFix, error) {
	var out []linkFix
	for _, l := range links {
		ws, ok := want[l.Name]
		if !ok || ws.IsZero() {
			continue
		}
		fixes, err := fw.bridgeFixes(ctx, l, ws, links)
		if err != nil {
			return nil, err
		}
		out = append(out, fixes...)
	}
	return out, nil
}

// bridgeFixes compares one link (normally a bridge) and its ports with ws.
func (fw *Firewall) bridgeFixes(ctx context.Context, l nft.Link, ws chains.LinkSettings, links []nft.Link) ([]linkFix, error) {
	var out []linkFix
	obj := "link " + l.Name
	if ws.RouteLocalnet {
		key := "net/ipv4/conf/" + l.Name + "/route_localnet"
		v, ok, err := fw.conn.Sysctl(key)
		if err != nil {
			return nil, err
		}
		if ok && v != "1" {
			out = append(out, linkFix{
				finding: Finding{Family: nft.IPv4, Object: obj, Problem: fmt.Sprintf("route_localnet is %s, want 1", v)},
				apply:   func(context.Context) error { return fw.conn.SetSysctl(key, "1") },
			})
		}
	}
	if l.Kind != "bridge" {
		return out, nil // not a bridge (refused at network create): nothing else applies
	}
	want4, want6 := ws.NFCallIPTables || l.NFCallIPTables, ws.NFCallIP6Tables || l.NFCallIP6Tables
	if want4 != l.NFCallIPTables || want6 != l.NFCallIP6Tables {
		fam, what := nft.IPv4, "nf_call_iptables"
		if want4 == l.NFCallIPTables {
			fam, what = nft.IPv6, "nf_call_ip6tables"
		}
		index := l.Index
		out = append(out, linkFix{
			finding: Finding{Family: fam, Object: obj, Problem: what + " is off, want on (bridge netfilter for hairpin NAT)"},
			apply:   func(ctx context.Context) error { return fw.setBridgeNFCall(ctx, index, want4, want6) },
		})
	}
	if ws.Hairpin {
		for _, p := range links {
			if p.Master != l.Index || !p.BridgePort || p.Hairpin {
				continue
			}
			index := p.Index
			out = append(out, linkFix{
				finding: Finding{Family: nft.IPv4, Object: fmt.Sprintf("link %s (port of %s)", p.Name, l.Name), Problem: "hairpin mode is off, want on"},
				apply:   func(ctx context.Context) error { return fw.conn.SetHairpin(ctx, index, true) },
			})
		}
	}
	return out, nil
}

// setBridgeNFCall sets a bridge's own netfilter options and makes sure
// the kernel took them: a kernel without bridge netfilter ignores them.
func (fw *Firewall) setBridgeNFCall(ctx context.Context, index int, v4, v6 bool) error {
	if err := fw.requireBridgeNetfilter(ctx); err != nil {
		return err
	}
	if err := fw.conn.SetBridgeNFCall(ctx, index, v4, v6); err != nil {
		return err
	}
	links, err := fw.conn.Links(ctx)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Index == index && (l.NFCallIPTables != v4 || l.NFCallIP6Tables != v6) {
			return fmt.Errorf("bridge %s: the kernel ignored nf_call_iptables/nf_call_ip6tables (no bridge netfilter): %w", l.Name, ErrNoBridgeNetfilter)
		}
	}
	return nil
}

// ErrNoBridgeNetfilter means the kernel's bridge netfilter (br_netfilter)
// is not available in the namespace and could not be loaded. With the
// userland proxy off dnft needs it (see [chains.LinkSettings]), and says
// so rather than skip it.
var ErrNoBridgeNetfilter = errors.New("br_netfilter is not available")

// requireBridgeNetfilter makes sure br_netfilter is there, loading the
// module as dockerd does (modprobe br_netfilter) when its sysctls are
// missing from the namespace.
func (fw *Firewall) requireBridgeNetfilter(ctx context.Context) error {
	const probe = "net/bridge/bridge-nf-call-iptables"
	if _, ok, err := fw.conn.Sysctl(probe); err != nil || ok {
		return err
	}
	var why string
	if out, err := exec.CommandContext(ctx, "modprobe", "br_netfilter").CombinedOutput(); err != nil {
		why = fmt.Sprintf(" (modprobe br_netfilter: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	if _, ok, err := fw.conn.Sysctl(probe); err != nil || ok {
		return err
	}
	return fmt.Errorf("%w in namespace %s%s: with the userland proxy off, replies between containers of one bridge that reach each other through a published port need it", ErrNoBridgeNetfilter, fw.conn.NetNS(), why)
}

// diffLinks lists the namespace's links and compares them with want.
func (fw *Firewall) diffLinks(ctx context.Context, want linkWant) ([]linkFix, error) {
	if len(want) == 0 {
		return nil, nil
	}
	links, err := fw.conn.Links(ctx)
	if err != nil {
		return nil, err
	}
	return fw.linkFixes(ctx, want, links)
}

// applyLinks brings the links of want that exist in line with it and
// returns what it changed. Failures are joined; the others still apply.
func (fw *Firewall) applyLinks(ctx context.Context, want linkWant) ([]Finding, error) {
	fixes, err := fw.diffLinks(ctx, want)
	if err != nil {
		return nil, err
	}
	var (
		done []Finding
		errs []error
	)
	for _, f := range fixes {
		if err := f.apply(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.finding.Object, err))
			continue
		}
		done = append(done, f.finding)
	}
	return done, errors.Join(errs...)
}

// linkDrift is the drift of the links that s wants something of.
func (fw *Firewall) linkDrift(ctx context.Context, s State) ([]Finding, error) {
	fixes, err := fw.diffLinks(ctx, stateLinks(s))
	if err != nil {
		return nil, err
	}
	out := make([]Finding, len(fixes))
	for i, f := range fixes {
		out[i] = f.finding
	}
	return out, nil
}

// isLinkFinding tells the findings of [Firewall.linkDrift] from those of
// the tables.
func isLinkFinding(f Finding) bool { return strings.HasPrefix(f.Object, "link ") }

// onlyLinkFindings reports whether every finding is about links: then a
// repair changes links and leaves the tables (and their counters) alone.
func onlyLinkFindings(fs []Finding) bool {
	for _, f := range fs {
		if !isLinkFinding(f) {
			return false
		}
	}
	return true
}

// networkLinks applies what dnft keeps on one network's bridge (after
// the network was created); d is the daemon's configuration.
func (fw *Firewall) networkLinks(ctx context.Context, d DaemonConfig, n Network) error {
	return fw.bridgeLinks(ctx, n.Bridge, chains.Links(d, []Network{n}, nil)[n.Bridge])
}

// bridgeLinks applies ws to one bridge, if it exists, and its ports,
// reading only that bridge and its ports.
func (fw *Firewall) bridgeLinks(ctx context.Context, name string, ws chains.LinkSettings) error {
	if ws.IsZero() {
		return nil
	}
	l, ok, err := fw.conn.LinkByName(ctx, name)
	if err != nil || !ok {
		return err
	}
	var ports []nft.Link
	if ws.Hairpin && l.Kind == "bridge" {
		if ports, err = fw.conn.LinkPorts(ctx, l.Index); err != nil {
			return err
		}
	}
	fixes, err := fw.bridgeFixes(ctx, l, ws, ports)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range fixes {
		if err := f.apply(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.finding.Object, err))
		}
	}
	return errors.Join(errs...)
}

// routeLocalnet sets route_localnet=1 on an interface if it exists and
// has it off (two sysctl accesses: cheap enough for every publication).
func (fw *Firewall) routeLocalnet(name string) error {
	key := "net/ipv4/conf/" + name + "/route_localnet"
	v, ok, err := fw.conn.Sysctl(key)
	if err != nil || !ok || v == "1" {
		return err
	}
	return fw.conn.SetSysctl(key, "1")
}
