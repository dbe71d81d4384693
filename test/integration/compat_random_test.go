package integration_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// randomModel is what a random sequence has programmed so far, to draw
// only operations that both dnft and the reference accept.
type randomModel struct {
	d        dnft.DaemonConfig
	nets     []dnft.NetworkConfig
	bindings map[string][]portmap.Binding // by network
	ingress  []dnft.IngressPort
	nextNet  int
	usedPort map[string]bool // proto/port taken on the host
}

// next draws an operation, or false when none fits.
func (m *randomModel) next(r *rand.Rand) (cvOp, string, bool) {
	var publishable []dnft.NetworkConfig
	for _, n := range m.nets {
		if !n.Internal {
			publishable = append(publishable, n)
		}
	}
	var withBindings []string
	for name, bs := range m.bindings {
		if len(bs) > 0 {
			withBindings = append(withBindings, name)
		}
	}
	slices.Sort(withBindings)
	switch k := r.IntN(100); {
	case k < 22 && len(m.nets) < 5:
		m.nextNet++
		i := m.nextNet
		name, bridge := fmt.Sprintf("n%d", i), fmt.Sprintf("br-%d", i)
		if r.IntN(4) == 0 && !slices.ContainsFunc(m.nets, func(n dnft.NetworkConfig) bool { return n.Bridge == "docker_gwbridge" }) {
			name, bridge = "gw", "docker_gwbridge"
		}
		n := dnft.NetworkConfig{Name: name, Bridge: bridge, Subnet4: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", 40+i)), ICC: r.IntN(4) > 0, Masquerade: r.IntN(5) > 0}
		switch r.IntN(8) {
		case 0:
			n.Internal, n.Masquerade = true, false
		case 1:
			n.HostIPv4 = netip.MustParseAddr("192.0.2.50")
		case 2:
			n.HostBindingIPv4 = netip.MustParseAddr("192.0.2.1")
		}
		m.nets = append(m.nets, n)
		return cvOp{create: &n}, "create " + name, true
	case k < 32 && len(m.nets) > 0:
		n := m.nets[r.IntN(len(m.nets))]
		if len(m.bindings[n.Name]) > 0 {
			return cvOp{}, "", false
		}
		m.nets = slices.DeleteFunc(m.nets, func(x dnft.NetworkConfig) bool { return x.Name == n.Name })
		for _, b := range m.bindings[n.Name] {
			delete(m.usedPort, string(b.Proto)+strconv.Itoa(int(b.HostPort)))
		}
		delete(m.bindings, n.Name)
		return cvOp{remove: n.Name}, "remove " + n.Name, true
	case k < 62 && len(publishable) > 0:
		n := publishable[r.IntN(len(publishable))]
		proto := []portmap.Proto{tcp, tcp, udp, sctp}[r.IntN(4)]
		var hp uint16
		for {
			hp = uint16(8000 + r.IntN(40))
			if !m.usedPort[string(proto)+strconv.Itoa(int(hp))] {
				break
			}
		}
		// few container addresses and ports: byte-identical rules happen
		c := n.Subnet4.Addr().Next().Next()
		if r.IntN(2) == 0 {
			c = c.Next()
		}
		cp := []uint16{80, 80, 443}[r.IntN(3)]
		host := []string{"", "", "127.0.0.1", "192.0.2.1"}[r.IntN(4)]
		b := reference.Bind(proto, host, hp, c.String(), cp)
		if host == "" && n.HostBindingIPv4.IsValid() {
			b.HostIP = n.HostBindingIPv4
		}
		if slices.ContainsFunc(m.ingress, func(g dnft.IngressPort) bool { return g.Proto == proto && g.Port == hp }) {
			return cvOp{}, "", false
		}
		m.usedPort[string(proto)+strconv.Itoa(int(hp))] = true
		m.bindings[n.Name] = append(m.bindings[n.Name], b)
		return cvOp{network: n.Name, publish: []portmap.Binding{b}}, fmt.Sprintf("publish %s %v", n.Name, b), true
	case k < 80 && len(withBindings) > 0:
		name := withBindings[r.IntN(len(withBindings))]
		bs := m.bindings[name]
		i := r.IntN(len(bs))
		b := bs[i]
		m.bindings[name] = slices.Delete(bs, i, i+1)
		delete(m.usedPort, string(b.Proto)+strconv.Itoa(int(b.HostPort)))
		return cvOp{network: name, unpublish: []portmap.Binding{b}}, fmt.Sprintf("unpublish %s %v", name, b), true
	case k < 92:
		proto := []portmap.Proto{tcp, udp}[r.IntN(2)]
		port := uint16(30000 + r.IntN(4))
		if m.usedPort[string(proto)+strconv.Itoa(int(port))] || slices.ContainsFunc(m.ingress, func(g dnft.IngressPort) bool { return g.Proto == proto && g.Port == port }) {
			return cvOp{}, "", false
		}
		g := dnft.IngressPort{Proto: proto, Port: port, Target: netip.MustParseAddr("172.18.0.2")}
		if r.IntN(3) == 0 { // a second gateway bridge: masquerades of their own
			g.GwBridge, g.Target = "gw2", netip.MustParseAddr("172.19.0.2")
		}
		m.ingress = append(m.ingress, g)
		return cvOp{ingress: &g}, fmt.Sprintf("ingress publish %s/%d %s", proto, port, g.GwBridge), true
	case len(m.ingress) > 0:
		i := r.IntN(len(m.ingress))
		g := m.ingress[i]
		m.ingress = slices.Delete(m.ingress, i, i+1)
		return cvOp{unpublishIn: &g}, fmt.Sprintf("ingress unpublish %s/%d %s", g.Proto, g.Port, g.GwBridge), true
	}
	return cvOp{}, "", false
}

// cvHistory runs operations one at a time through dnft and the
// real-iptables reference and compares dnft's iptables-save view with
// real iptables-save after each (IPv4; IPv6 too when the daemon has it).
// At the end, dnft check finds no drift and the saved state, restored in
// a fresh namespace, shows the same view: the history the view needs is
// part of the state.
type cvHistory struct {
	t       *testing.T
	ctx     context.Context
	d       dnft.DaemonConfig
	dn, ref *harness.NS
	fw      *dnft.Firewall
	p       *reference.Programmer
	variant compat.Variant
	names   *compat.Names
	done    []string
}

func newCVHistory(ctx context.Context, t *testing.T, d dnft.DaemonConfig) *cvHistory {
	t.Helper()
	variant, refVariant := cvVariant(t)
	h := &cvHistory{t: t, ctx: ctx, d: d, dn: harness.Scratch(t), ref: harness.Scratch(t), variant: variant, names: cvNames(t)}
	h.fw = openFirewall(ctx, t, h.dn)
	require.NoError(t, h.fw.Init(ctx, d))
	var err error
	h.p, err = reference.New(ctx, h.ref.Name, d, reference.WithVariant(refVariant))
	require.NoError(t, err)
	return h
}

func (h *cvHistory) families() []compat.Family {
	if h.d.IPv6 {
		return []compat.Family{compat.IPv4, compat.IPv6}
	}
	return []compat.Family{compat.IPv4}
}

// step applies o (described by what) and compares the views.
func (h *cvHistory) step(o cvOp, what string) {
	h.t.Helper()
	h.done = append(h.done, what)
	cvScenario{ops: []cvOp{o}}.apply(h.ctx, h.t, h.fw, h.p)
	view := readView(h.ctx, h.t, h.dn)
	for _, f := range h.families() {
		want := cvExec(h.ctx, h.ref.Name, f.Tool()+"-save")
		got := cvRun(view.Family(f), h.variant, h.names, true, nil)
		got.stdout, want.stdout = cvMaskDates(got.stdout), cvMaskDates(want.stdout)
		if got != want {
			h.t.Fatalf("%s, after %s (daemon %+v):\n%s\nsteps:\n%s", f.Tool()+"-save", what, h.d,
				lineDiff(got.stdout, want.stdout), strings.Join(h.done, "\n"))
		}
	}
}

// finish checks for drift and restores the saved state elsewhere.
func (h *cvHistory) finish() {
	h.t.Helper()
	findings, err := h.fw.Check(h.ctx, nil)
	require.NoError(h.t, err)
	require.Empty(h.t, findings, "steps:\n%s", strings.Join(h.done, "\n"))
	s, err := h.fw.Save(h.ctx)
	require.NoError(h.t, err)
	doc, err := s.Encode()
	require.NoError(h.t, err)
	back, err := dnft.ParseState(doc)
	require.NoError(h.t, err)
	other := harness.Scratch(h.t)
	require.NoError(h.t, openFirewall(h.ctx, h.t, other).Restore(h.ctx, back))
	want, got := readView(h.ctx, h.t, h.dn), readView(h.ctx, h.t, other)
	for _, f := range h.families() {
		w := cvRun(want.Family(f), h.variant, h.names, true, nil)
		g := cvRun(got.Family(f), h.variant, h.names, true, nil)
		require.Equal(h.t, cvMaskDates(w.stdout), cvMaskDates(g.stdout), "restored state, steps:\n%s\nstate:\n%s", strings.Join(h.done, "\n"), doc)
	}
}

// TestCompatHistory: what iptables leaves after sequences whose result
// depends on history (issue #15 item 6), step by step against real
// iptables: the raw table kept once used; iptables' -D removing the first
// of byte-identical rules (filter accepts and hairpins of two bindings of
// one container port; a docker_gwbridge network's masquerade from the
// host and the ingress gateway's); the ingress chains, jumps and gateway
// masquerades left where the first publication put them.
func TestCompatHistory(t *testing.T) {
	harness.RequireRoot(t)
	noProxy := dnft.DaemonConfig{IPForward: true}
	c1, c2 := "172.18.0.2", "172.18.0.3"
	gwNet := cvNet("gw", "docker_gwbridge", "172.30.0.0/16", "")
	for _, tc := range []struct {
		name string
		d    dnft.DaemonConfig
		ops  []cvOp
	}{
		{"raw table kept", noProxy, []cvOp{
			cvNet("a", "br-a", "172.18.0.0/16", ""), rmNet("a"),
			cvNet("b", "br-b", "172.19.0.0/16", "", internalNet),
		}},
		{"filter accept of an older copy", noProxy, []cvOp{
			cvNet("a", "br-a", "172.18.0.0/16", ""),
			pub("a", reference.Bind(tcp, "", 8001, c1, 80)),
			pub("a", reference.Bind(tcp, "", 8002, c2, 80)),
			pub("a", reference.Bind(tcp, "127.0.0.1", 8003, c1, 80)),
			unpub("a", reference.Bind(tcp, "", 8001, c1, 80)),
			pub("a", reference.Bind(tcp, "", 8004, c1, 80)),
			unpub("a", reference.Bind(tcp, "127.0.0.1", 8003, c1, 80)),
			pub("a", reference.Bind(tcp, "", 8005, c2, 81)),
			unpub("a", reference.Bind(tcp, "", 8004, c1, 80)),
		}},
		{"hairpin of a newer copy", dnft.DaemonConfig{UserlandProxy: true, IPForward: true}, []cvOp{
			cvNet("a", "br-a", "172.18.0.0/16", ""),
			pub("a", reference.Bind(udp, "", 8001, c1, 53)),
			pub("a", reference.Bind(udp, "", 8002, c2, 53)),
			pub("a", reference.Bind(udp, "192.0.2.1", 8003, c1, 53), reference.Bind(udp, "", 8004, c1, 53)),
			unpub("a", reference.Bind(udp, "", 8004, c1, 53)),
			pub("a", reference.Bind(udp, "", 8005, c2, 54)),
			unpub("a", reference.Bind(udp, "192.0.2.1", 8003, c1, 53)),
		}},
		{"ingress chains of the first publication", noProxy, []cvOp{
			cvIngress("", tcp, 30000, "172.30.0.2"),
			cvNet("a", "br-a", "172.18.0.0/16", ""),
			cvIngress("gw2", udp, 30001, "172.31.0.2"),
			cvIngress("", tcp, 30002, "172.30.0.2"),
			unIngress("", tcp, 30000, "172.30.0.2"),
			cvNet("b", "br-b", "172.19.0.0/16", ""),
			unIngress("gw2", udp, 30001, "172.31.0.2"),
			cvIngress("gw2", udp, 30001, "172.31.0.2"),
		}},
		{"ingress chains gone with the last port", noProxy, []cvOp{
			cvIngress("", tcp, 30000, "172.30.0.2"),
			cvNet("a", "br-a", "172.18.0.0/16", ""),
			cvIngress("", tcp, 30002, "172.30.0.2"),
			unIngress("", tcp, 30000, "172.30.0.2"),
			unIngress("", tcp, 30002, "172.30.0.2"),
			cvNet("b", "br-b", "172.19.0.0/16", ""),
			cvIngress("gw2", udp, 30001, "172.31.0.2"),
		}},
		{"docker_gwbridge masquerade after ingress", noProxy, []cvOp{
			cvIngress("", tcp, 30000, "172.30.0.2"),
			cvNet("a", "br-a", "172.18.0.0/16", "", snat4("192.0.2.50")),
			gwNet,
			unIngress("", tcp, 30000, "172.30.0.2"),
			cvNet("b", "br-b", "172.19.0.0/16", ""),
			cvIngress("", udp, 30001, "172.30.0.2"),
			rmNet("gw"),
		}},
		{"docker_gwbridge masquerade before ingress", noProxy, []cvOp{
			gwNet,
			cvNet("a", "br-a", "172.18.0.0/16", "", snat4("192.0.2.50")),
			cvIngress("", tcp, 30000, "172.30.0.2"),
			rmNet("gw"),
			cvNet("b", "br-b", "172.19.0.0/16", ""),
			gwNet,
			unIngress("", tcp, 30000, "172.30.0.2"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			h := newCVHistory(ctx, t, tc.d)
			for i, o := range tc.ops {
				h.step(o, fmt.Sprintf("op %d", i))
			}
			h.finish()
		})
	}
}

// TestCompatRandom is the randomized differential test of issue #15
// item 6: random sequences of operations (networks of every kind created
// and removed, bindings published and unpublished, including the same
// container port twice, ingress ports on two gateways, one of them a
// docker_gwbridge network's bridge) are run by dnft and by the
// real-iptables reference, and after every operation dnft's
// iptables-save view equals real iptables-save; at the end of each
// sequence dnft check finds no drift and the saved state restores to the
// same view. DNFT_RANDOM_SEQS sets the number of sequences (6),
// DNFT_RANDOM_SEED replays one.
func TestCompatRandom(t *testing.T) {
	harness.RequireRoot(t)
	seqs, ops := 6, 20
	if s, err := strconv.Atoi(os.Getenv("DNFT_RANDOM_SEQS")); err == nil && s > 0 {
		seqs = s
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("DNFT_RANDOM_SEED"), 10, 64); err == nil {
		seed, seqs = s, 1
	}
	for i := range seqs {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			r := rand.New(rand.NewPCG(s, s))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			m := &randomModel{d: dnft.DaemonConfig{UserlandProxy: r.IntN(2) == 0, AllowDirectRouting: r.IntN(4) == 0, IPForward: true},
				bindings: map[string][]portmap.Binding{}, usedPort: map[string]bool{}}
			h := newCVHistory(ctx, t, m.d)
			for len(h.done) < ops {
				o, what, ok := m.next(r)
				if ok {
					h.step(o, what)
				}
			}
			h.finish()
		})
	}
}
