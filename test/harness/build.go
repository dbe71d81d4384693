package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// build creates the namespaces, links, addresses, routes and echo servers.
// On failure the caller's cleanup (destroy) removes what was created.
func (tp *Topology) build(ctx context.Context) error {
	all := tp.Namespaces()
	for _, ns := range all {
		if err := addNetns(ctx, ns.Name); err != nil {
			return err
		}
		tp.created = append(tp.created, ns)
	}
	// Sysctls first: links created afterwards take their settings from
	// the "default" entries.
	if err := parallel(all, func(ns *NS) error {
		return ns.setSysctls(tp.sysctls(ns == tp.Host), optionalSysctls)
	}); err != nil {
		return err
	}
	if err := runIP(ctx, []string{"-n", tp.Host.Name, "-batch", "-"}, tp.hostBatch()); err != nil {
		return err
	}
	if err := parallel(all[1:], func(ns *NS) error {
		return runIP(ctx, []string{"-n", ns.Name, "-batch", "-"}, tp.peerBatch(ns))
	}); err != nil {
		return err
	}
	if err := tp.waitReady(ctx); err != nil {
		return err
	}
	return tp.startServers()
}

// optionalSysctls may be missing from older kernels.
var optionalSysctls = map[string]bool{
	"net/ipv6/icmp/ratemask": true,
}

// sysctls returns the settings for one namespace (paths below /proc/sys).
func (tp *Topology) sysctls(host bool) [][2]string {
	fwd := "0"
	if host && !tp.Spec.NoForward {
		fwd = "1"
	}
	return [][2]string{
		// ip_forward first: writing it resets every conf/*/forwarding.
		{"net/ipv4/ip_forward", fwd},
		{"net/ipv6/conf/all/forwarding", fwd},
		{"net/ipv6/conf/default/forwarding", fwd},
		// Inherited from the initial namespace, where it is often 1 or 2;
		// strict mode would drop the Internet's packets from container
		// subnets it has no route to.
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		// No ICMP rate limits: many "refused" probes in a row must all get
		// their port unreachable.
		{"net/ipv4/icmp_ratelimit", "0"},
		{"net/ipv4/icmp_ratemask", "0"},
		{"net/ipv6/icmp/ratelimit", "0"},
		{"net/ipv6/icmp/ratemask", ""},
	}
}

// hostBatch is the `ip -batch` script that configures Host.
func (tp *Topology) hostBatch() string {
	var b strings.Builder
	v6 := tp.Spec.IPv6
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	addr := func(p netip.Prefix, dev string) {
		if !p.IsValid() || (p.Addr().Is6() && !v6) {
			return
		}
		if p.Addr().Is6() {
			line("addr add %s dev %s nodad", p, dev)
		} else {
			line("addr add %s dev %s", p, dev)
		}
	}
	line("link set lo up")
	for _, l := range []struct {
		dev    string
		peer   *NS
		p4, p6 netip.Prefix
	}{
		{HostLANIf, tp.LAN, netip.PrefixFrom(LANHostAddr4, LANPrefix4.Bits()), netip.PrefixFrom(LANHostAddr6, LANPrefix6.Bits())},
		{HostWANIf, tp.Internet, netip.PrefixFrom(WANHostAddr4, WANPrefix4.Bits()), netip.PrefixFrom(WANHostAddr6, WANPrefix6.Bits())},
	} {
		line("link add %s type veth peer name %s netns %s", l.dev, PeerIf, l.peer.Name)
		addr(l.p4, l.dev)
		addr(l.p6, l.dev)
		line("link set %s up", l.dev)
	}
	for _, br := range tp.Spec.Bridges {
		line("link add %s type bridge", br.Name)
		addr(br.Gateway4, br.Name)
		addr(br.Gateway6, br.Name)
		line("link set %s up", br.Name)
	}
	for _, c := range tp.Spec.Containers {
		veth := VethName(c.Name)
		line("link add %s type veth peer name %s netns %s", veth, PeerIf, tp.Containers[c.Name].Name)
		line("link set %s master %s", veth, c.Bridge)
		line("link set %s type bridge_slave hairpin on", veth)
		line("link set %s up", veth)
	}
	return b.String()
}

// peerBatch is the `ip -batch` script for LAN, Internet or a container.
func (tp *Topology) peerBatch(ns *NS) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("link set lo up")
	var p4, p6 netip.Prefix
	var gw4, gw6 netip.Addr
	switch ns {
	case tp.LAN:
		p4, p6 = netip.PrefixFrom(LANAddr4, LANPrefix4.Bits()), netip.PrefixFrom(LANAddr6, LANPrefix6.Bits())
	case tp.Internet:
		p4, p6 = netip.PrefixFrom(InternetAddr4, WANPrefix4.Bits()), netip.PrefixFrom(InternetAddr6, WANPrefix6.Bits())
	default:
		for _, c := range tp.Spec.Containers {
			if tp.Containers[c.Name] != ns {
				continue
			}
			for _, br := range tp.Spec.Bridges {
				if br.Name != c.Bridge {
					continue
				}
				if c.Addr4.IsValid() {
					p4, gw4 = netip.PrefixFrom(c.Addr4, br.Gateway4.Bits()), br.Gateway4.Addr()
				}
				if c.Addr6.IsValid() {
					p6, gw6 = netip.PrefixFrom(c.Addr6, br.Gateway6.Bits()), br.Gateway6.Addr()
				}
			}
		}
	}
	if p4.IsValid() {
		line("addr add %s dev %s", p4, PeerIf)
	}
	if tp.Spec.IPv6 && p6.IsValid() {
		line("addr add %s dev %s nodad", p6, PeerIf)
	}
	line("link set %s up", PeerIf)
	if gw4.IsValid() {
		line("route add default via %s dev %s", gw4, PeerIf)
	}
	if tp.Spec.IPv6 && gw6.IsValid() {
		line("route add default via %s dev %s", gw6, PeerIf)
	}
	return b.String()
}

// startServers starts the default echo servers and those in the spec.
func (tp *Topology) startServers() error {
	type want struct {
		ns       *NS
		tcp, udp []uint16
	}
	wants := []want{
		{tp.LAN, []uint16{EchoPort}, []uint16{EchoPort}},
		{tp.Internet, []uint16{EchoPort}, []uint16{EchoPort}},
	}
	for _, c := range tp.Spec.Containers {
		wants = append(wants, want{tp.Containers[c.Name], c.TCPPorts, c.UDPPorts})
	}
	for _, w := range wants {
		for _, p := range w.tcp {
			if _, err := w.ns.serveTCP(p); err != nil {
				return err
			}
		}
		for _, p := range w.udp {
			if _, err := w.ns.serveUDP(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// destroy stops all echo servers and deletes every namespace that was
// created. It keeps going after errors and returns them all.
func (tp *Topology) destroy() error {
	for _, ns := range tp.created {
		ns.closeServers()
	}
	var errs []error
	for i := len(tp.created) - 1; i >= 0; i-- {
		if err := delNetns(tp.created[i].Name); err != nil {
			errs = append(errs, err)
		}
	}
	tp.created = nil
	return errors.Join(errs...)
}

// parallel runs fn for every namespace at once and returns the errors.
func parallel(nss []*NS, fn func(*NS) error) error {
	errs := make([]error, len(nss))
	var wg sync.WaitGroup
	for i, ns := range nss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(ns)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
