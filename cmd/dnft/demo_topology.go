package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// demoNSPrefix starts the name of every namespace the demo creates.
const demoNSPrefix = "dnft-demo-"

// Namespace roles: the Docker host, a LAN neighbour, a server on the
// internet, and three containers.
const (
	roleHost  = "host"
	roleLAN   = "lan"
	roleInet  = "inet"
	roleWeb   = "web"
	roleDB    = "db"
	roleOther = "other"
)

var demoRoles = []string{roleHost, roleLAN, roleInet, roleWeb, roleDB, roleOther}

// Host interfaces towards the LAN and the internet.
const (
	demoLANIf = "lan0"
	demoWANIf = "wan0"
)

// mustPrefix parses an interface address with its prefix length.
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// Link addressing: the host's end and the peer's end of each link.
var (
	demoLANHost4 = mustPrefix("192.0.2.1/24")
	demoLANPeer4 = mustPrefix("192.0.2.2/24")
	demoWANHost4 = mustPrefix("203.0.113.1/24")
	demoWANPeer4 = mustPrefix("203.0.113.2/24")
	demoLANHost6 = mustPrefix("2001:db8:1::1/64")
	demoLANPeer6 = mustPrefix("2001:db8:1::2/64")
	demoWANHost6 = mustPrefix("2001:db8:2::1/64")
	demoWANPeer6 = mustPrefix("2001:db8:2::2/64")
)

// demoBridge is a bridge in the host namespace; gw4 and gw6 are its
// addresses, which are the containers' gateways and subnets.
type demoBridge struct {
	network  string
	name     string
	gw4, gw6 netip.Prefix
	icc      bool
}

var demoBridges = []demoBridge{
	{network: "web", name: "br-web", gw4: mustPrefix("172.18.0.1/16"), gw6: mustPrefix("fd00:18::1/64"), icc: true},
	{network: "other", name: "br-other", gw4: mustPrefix("172.19.0.1/16"), gw6: mustPrefix("fd00:19::1/64"), icc: false},
}

// demoContainer is a container namespace attached to a bridge by a veth
// (veth in the host, eth0 inside).
type demoContainer struct {
	role         string
	bridge       *demoBridge
	veth         string
	addr4, addr6 netip.Addr
}

var demoContainers = []demoContainer{
	{roleWeb, &demoBridges[0], "veth-web", netip.MustParseAddr("172.18.0.2"), netip.MustParseAddr("fd00:18::2")},
	{roleDB, &demoBridges[0], "veth-db", netip.MustParseAddr("172.18.0.3"), netip.MustParseAddr("fd00:18::3")},
	{roleOther, &demoBridges[1], "veth-other", netip.MustParseAddr("172.19.0.2"), netip.MustParseAddr("fd00:19::2")},
}

func demoContainerByRole(role string) demoContainer {
	for _, c := range demoContainers {
		if c.role == role {
			return c
		}
	}
	panic("no demo container " + role)
}

// demoTopo is one set of throwaway namespaces.
type demoTopo struct {
	prefix  string // "dnft-demo-1a2b-"
	ipv6    bool
	created []string       // namespace names, in creation order
	servers []*echoServer  // closed before the namespaces are deleted
	closers []func() error // other things pinning a namespace
}

// newDemoTopo picks a prefix that no existing namespace uses.
func newDemoTopo(ipv6 bool) (*demoTopo, error) {
	for range 16 {
		prefix := fmt.Sprintf("%s%04x-", demoNSPrefix, rand.N(1<<16))
		if m, _ := filepath.Glob(filepath.Join("/run/netns", prefix+"*")); len(m) == 0 {
			return &demoTopo{prefix: prefix, ipv6: ipv6}, nil
		}
	}
	return nil, errors.New("no unused namespace prefix found")
}

// name returns the namespace name of a role, path its bind-mount path.
func (t *demoTopo) name(role string) string { return t.prefix + role }
func (t *demoTopo) path(role string) string { return filepath.Join("/run/netns", t.name(role)) }

// build creates the namespaces and links. Whatever it created is recorded
// for destroy, also when it fails.
func (t *demoTopo) build(ctx context.Context) error {
	for _, r := range demoRoles {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Not cut short by ctx: a half-made namespace would be left over.
		if err := runIPCmd(context.Background(), "", "netns", "add", t.name(r)); err != nil {
			return err
		}
		t.created = append(t.created, t.name(r))
	}
	// Sysctls before the links, which take the "default" settings.
	for _, r := range demoRoles {
		if err := writeSysctls(t.path(r), t.sysctls(r == roleHost)); err != nil {
			return fmt.Errorf("%s: %w", t.name(r), err)
		}
	}
	if err := runIPCmd(ctx, t.hostBatch(), "-n", t.name(roleHost), "-batch", "-"); err != nil {
		return err
	}
	for _, r := range demoRoles[1:] {
		if err := runIPCmd(ctx, t.peerBatch(r), "-n", t.name(r), "-batch", "-"); err != nil {
			return err
		}
	}
	return nil
}

func (t *demoTopo) sysctls(host bool) [][2]string {
	fwd := "0"
	if host {
		fwd = "1"
	}
	kv := [][2]string{
		// ip_forward first: writing it resets every conf/*/forwarding.
		{"net/ipv4/ip_forward", fwd},
		// Copied from the initial namespace, where strict mode is common.
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
	}
	if t.ipv6 {
		kv = append(kv,
			[2]string{"net/ipv6/conf/all/forwarding", fwd},
			[2]string{"net/ipv6/conf/default/forwarding", fwd},
			[2]string{"net/ipv6/conf/all/accept_dad", "0"},
			[2]string{"net/ipv6/conf/default/accept_dad", "0"})
	}
	return kv
}

// hostBatch is the `ip -batch` script of the host namespace: the LAN and
// internet links, the bridges and the containers' veths.
func (t *demoTopo) hostBatch() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	addr := func(p netip.Prefix, dev string) {
		switch {
		case p.Addr().Is4():
			line("addr add %s dev %s", p, dev)
		case t.ipv6:
			line("addr add %s dev %s nodad", p, dev)
		}
	}
	line("link set lo up")
	for _, l := range []struct {
		dev, peer string
		p4, p6    netip.Prefix
	}{
		{demoLANIf, roleLAN, demoLANHost4, demoLANHost6},
		{demoWANIf, roleInet, demoWANHost4, demoWANHost6},
	} {
		line("link add %s type veth peer name eth0 netns %s", l.dev, t.name(l.peer))
		addr(l.p4, l.dev)
		addr(l.p6, l.dev)
		line("link set %s up", l.dev)
	}
	for _, br := range demoBridges {
		line("link add %s type bridge", br.name)
		addr(br.gw4, br.name)
		addr(br.gw6, br.name)
		line("link set %s up", br.name)
	}
	for _, c := range demoContainers {
		line("link add %s type veth peer name eth0 netns %s", c.veth, t.name(c.role))
		line("link set %s master %s", c.veth, c.bridge.name)
		line("link set %s type bridge_slave hairpin on", c.veth)
		line("link set %s up", c.veth)
	}
	return b.String()
}

// peerBatch is the `ip -batch` script of the LAN, internet or a container.
// The internet has no route to the containers: it can only answer
// masqueraded traffic. The LAN routes the container subnets via the host,
// as a neighbour trying to reach containers directly would.
func (t *demoTopo) peerBatch(role string) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("link set lo up")
	var p4, p6 netip.Prefix
	var gw4, gw6 netip.Addr
	switch role {
	case roleLAN:
		p4, p6 = demoLANPeer4, demoLANPeer6
	case roleInet:
		p4, p6 = demoWANPeer4, demoWANPeer6
	default:
		c := demoContainerByRole(role)
		p4 = netip.PrefixFrom(c.addr4, c.bridge.gw4.Bits())
		p6 = netip.PrefixFrom(c.addr6, c.bridge.gw6.Bits())
		gw4, gw6 = c.bridge.gw4.Addr(), c.bridge.gw6.Addr()
	}
	line("addr add %s dev eth0", p4)
	if t.ipv6 {
		line("addr add %s dev eth0 nodad", p6)
	}
	line("link set eth0 up")
	if gw4.IsValid() {
		line("route add default via %s dev eth0", gw4)
		if t.ipv6 {
			line("route add default via %s dev eth0", gw6)
		}
	}
	if role == roleLAN {
		for _, br := range demoBridges {
			line("route add %s via %s", br.gw4.Masked(), demoLANHost4.Addr())
			if t.ipv6 {
				line("route add %s via %s", br.gw6.Masked(), demoLANHost6.Addr())
			}
		}
	}
	return b.String()
}

// serve starts an echo server in a namespace; destroy stops it.
func (t *demoTopo) serve(role string, addr netip.AddrPort) error {
	s, err := serveEcho(t.path(role), addr)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name(role), err)
	}
	t.servers = append(t.servers, s)
	return nil
}

// release closes the servers and whatever else holds a namespace open.
func (t *demoTopo) release() error {
	var errs []error
	for _, s := range t.servers {
		errs = append(errs, s.Close())
	}
	for i := len(t.closers) - 1; i >= 0; i-- {
		errs = append(errs, t.closers[i]())
	}
	t.servers, t.closers = nil, nil
	return errors.Join(errs...)
}

// destroy releases everything and deletes the namespaces, which also
// deletes their links. It keeps going after errors.
func (t *demoTopo) destroy() error {
	errs := []error{t.release()}
	for i := len(t.created) - 1; i >= 0; i-- {
		errs = append(errs, runIPCmd(context.Background(), "", "netns", "del", t.created[i]))
	}
	t.created = nil
	return errors.Join(errs...)
}

// runIPCmd runs `ip args...`, feeding stdin when it is not empty.
func runIPCmd(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.SysProcAttr = demoSysProcAttr()
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// demoSysProcAttr puts a child in its own process group, so that Ctrl-C in
// a terminal interrupts only dnft, which then stops the children it needs
// to stop (through ctx) and cleans up, instead of killing them midway.
func demoSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// nsCommand runs a command inside a namespace and returns its output.
func nsCommand(ctx context.Context, ns string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.SysProcAttr = demoSysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", ctxErr
		}
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
