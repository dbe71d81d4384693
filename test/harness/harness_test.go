package harness_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/dnft/dnft/test/harness"
)

var (
	subnet4 = netip.MustParsePrefix("172.18.0.0/16")
	gw4     = netip.MustParsePrefix("172.18.0.1/16")
	gw6     = netip.MustParsePrefix("fd00:18::1/64")
	c1Addr4 = netip.MustParseAddr("172.18.0.2")
	c2Addr4 = netip.MustParseAddr("172.18.0.3")
	c1Addr6 = netip.MustParseAddr("fd00:18::2")
	c2Addr6 = netip.MustParseAddr("fd00:18::3")
)

// twoContainers is one bridge with c1 and c2, c2 running echo servers on 80.
func twoContainers(ipv6 bool) harness.Spec {
	return harness.Spec{
		IPv6:    ipv6,
		Bridges: []harness.BridgeSpec{{Name: "br-test", Gateway4: gw4, Gateway6: gw6}},
		Containers: []harness.ContainerSpec{
			{Name: "c1", Bridge: "br-test", Addr4: c1Addr4, Addr6: c1Addr6},
			{Name: "c2", Bridge: "br-test", Addr4: c2Addr4, Addr6: c2Addr6, TCPPorts: []uint16{80}, UDPPorts: []uint16{80}},
		},
	}
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// answered is ctx for probes that must be answered: a late answer on a
// loaded machine is not a drop.
func answered(ctx context.Context) context.Context {
	return harness.WithProbeLimit(ctx, 30*time.Second)
}

func TestContainerToContainer(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(false))
	c1, c2 := tp.Containers["c1"], tp.Containers["c2"]
	res := harness.RunMatrix(context.Background(), []harness.Probe{
		{Name: "tcp", From: c1, Kind: harness.KindTCP, To: ap(c2.Addr4, 80)},
		{Name: "udp", From: c1, Kind: harness.KindUDP, To: ap(c2.Addr4, 80)},
		{Name: "icmp", From: c1, Kind: harness.KindICMP, To: ap(c2.Addr4, 0)},
		{Name: "tcp-closed", From: c1, Kind: harness.KindTCP, To: ap(c2.Addr4, 81)},
		{Name: "udp-closed", From: c1, Kind: harness.KindUDP, To: ap(c2.Addr4, 81)},
		{Name: "gateway", From: c1, Kind: harness.KindICMP, To: ap(gw4.Addr(), 0)},
	})
	assert.Equal(t, "ok from 172.18.0.2", res["tcp"].String())
	assert.Equal(t, "ok from 172.18.0.2", res["udp"].String())
	assert.Equal(t, "ok from 172.18.0.3", res["icmp"].String())
	assert.Equal(t, harness.Refused, res["tcp-closed"].Err)
	assert.Equal(t, harness.Refused, res["udp-closed"].Err)
	assert.Equal(t, "ok from 172.18.0.1", res["gateway"].String())
	assert.True(t, c2.SawFrom("udp", 80, c1.Addr4))
}

func TestLANToContainer(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(false))
	ctx := context.Background()
	c2 := tp.Containers["c2"]

	r := tp.LAN.TCP(ctx, ap(c2.Addr4, 80))
	assert.Equal(t, harness.Unreachable, r.Err, "LAN has no route to the bridge subnet")

	require.NoError(t, tp.LAN.AddRoute(ctx, subnet4, harness.LANHostAddr4))
	r = tp.LAN.TCP(answered(ctx), ap(c2.Addr4, 80))
	assert.Equal(t, "ok from 192.0.2.2", r.String(), "routed via the host, no NAT")
	r = tp.LAN.UDP(answered(ctx), ap(c2.Addr4, 80))
	assert.Equal(t, "ok from 192.0.2.2", r.String())
}

func TestNoForward(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	spec := twoContainers(false)
	spec.NoForward = true
	tp := harness.New(t, spec)
	ctx := context.Background()
	v, err := tp.Host.Sysctl("net.ipv4.ip_forward")
	require.NoError(t, err)
	assert.Equal(t, "0", v)
	require.NoError(t, tp.LAN.AddRoute(ctx, subnet4, harness.LANHostAddr4))
	r := tp.LAN.TCP(ctx, ap(tp.Containers["c2"].Addr4, 80))
	assert.True(t, r.Blocked(), "forwarded although ip_forward=0: %v", r)
}

func TestContainerToInternet(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(false))
	ctx := context.Background()
	c1 := tp.Containers["c1"]

	res := harness.RunMatrix(ctx, []harness.Probe{
		{Name: "udp", From: c1, Kind: harness.KindUDP, To: ap(harness.InternetAddr4, harness.EchoPort)},
		{Name: "tcp", From: c1, Kind: harness.KindTCP, To: ap(harness.InternetAddr4, harness.EchoPort)},
		{Name: "host-wan", From: c1, Kind: harness.KindICMP, To: ap(harness.WANHostAddr4, 0)},
	})
	// Without masquerade the request arrives with the container's own
	// source, and the Internet has no route back.
	assert.Equal(t, harness.Timeout, res["udp"].Err)
	assert.Equal(t, harness.Timeout, res["tcp"].Err)
	assert.True(t, tp.Internet.SawFrom("udp", harness.EchoPort, c1.Addr4), "hits: %v", tp.Internet.Hits())
	// The host's own addresses answer.
	assert.Equal(t, "ok from 203.0.113.1", res["host-wan"].String())

	// The Host itself reaches the Internet directly.
	r := tp.Host.UDP(answered(ctx), ap(harness.InternetAddr4, harness.EchoPort))
	assert.Equal(t, "ok from 203.0.113.1", r.String())
}

func TestIPv6(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(true))
	c1, c2 := tp.Containers["c1"], tp.Containers["c2"]
	require.Equal(t, c1Addr6, c1.Addr6)
	res := harness.RunMatrix(context.Background(), []harness.Probe{
		{Name: "tcp6", From: c1, Kind: harness.KindTCP, To: ap(c2.Addr6, 80)},
		{Name: "udp6", From: c1, Kind: harness.KindUDP, To: ap(c2.Addr6, 80)},
		{Name: "icmp6", From: c1, Kind: harness.KindICMP, To: ap(c2.Addr6, 0)},
		{Name: "udp6-closed", From: c1, Kind: harness.KindUDP, To: ap(c2.Addr6, 81)},
		{Name: "tcp4", From: c1, Kind: harness.KindTCP, To: ap(c2.Addr4, 80)},
		{Name: "lan-host6", From: tp.LAN, Kind: harness.KindICMP, To: ap(harness.LANHostAddr6, 0)},
		{Name: "inet6", From: c1, Kind: harness.KindUDP, To: ap(harness.InternetAddr6, harness.EchoPort)},
	})
	assert.Equal(t, "ok from fd00:18::2", res["tcp6"].String())
	assert.Equal(t, "ok from fd00:18::2", res["udp6"].String())
	assert.Equal(t, "ok from fd00:18::3", res["icmp6"].String())
	assert.Equal(t, harness.Refused, res["udp6-closed"].Err)
	assert.Equal(t, "ok from 172.18.0.2", res["tcp4"].String())
	assert.Equal(t, "ok from 2001:db8:1::1", res["lan-host6"].String())
	assert.Equal(t, harness.Timeout, res["inet6"].Err)
	assert.True(t, tp.Internet.SawFrom("udp", harness.EchoPort, c1.Addr6))
}

// TestLoopbackRoute checks that AddRoute(127.0.0.0/8) really sends LAN
// packets for 127.0.0.1 to the host, where only route_localnet lets them in.
func TestLoopbackRoute(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, harness.Spec{})
	ctx := context.Background()
	port := tp.Host.ServeTCP(t, 0)
	lo := ap(netip.MustParseAddr("127.0.0.1"), port)
	assert.Equal(t, harness.Refused, tp.LAN.TCP(ctx, lo).Err, "LAN's own loopback")

	require.NoError(t, tp.LAN.AddRoute(ctx, netip.MustParsePrefix("127.0.0.0/8"), harness.LANHostAddr4))
	assert.Equal(t, harness.Timeout, tp.LAN.TCP(ctx, lo).Err, "martian destination on the host")

	require.NoError(t, tp.Host.SetSysctl("net.ipv4.conf.lan0.route_localnet", "1"))
	assert.Equal(t, "ok from 192.0.2.2", tp.LAN.TCP(answered(ctx), lo).String(), "the same probe once route_localnet lets it in (control)")
	// The LAN's own addresses still work locally.
	out, err := tp.LAN.Run(ctx, "ip", "route", "get", "192.0.2.2")
	require.NoError(t, err)
	assert.Contains(t, out, "local 192.0.2.2")
}

// TestMatrixIsConcurrent proves that RunMatrix overlaps its probes: a
// server that holds every connection a little before answering sees
// several of them at once, which a sequential run could never produce.
// The timed-out probes show that a slow probe does not hold up the rest.
func TestMatrixIsConcurrent(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(false))
	c1, c2 := tp.Containers["c1"], tp.Containers["c2"]
	port, peak := holdServer(t, c2, 100*time.Millisecond)
	var probes []harness.Probe
	for i := range 40 {
		p := harness.Probe{Name: fmt.Sprintf("udp-inet-%d", i), From: c1, Kind: harness.KindUDP, To: ap(harness.InternetAddr4, 80)}
		if i%4 == 0 {
			p = harness.Probe{Name: fmt.Sprintf("tcp-held-%d", i), From: c1, Kind: harness.KindTCP, To: ap(c2Addr4, port)}
		}
		probes = append(probes, p)
	}
	res := harness.RunMatrix(context.Background(), probes)
	require.Len(t, res, 40)
	for i, p := range probes {
		want := harness.Timeout // the Internet has no route back to c1
		if i%4 == 0 {
			want = ""
		}
		assert.Equal(t, want, res[p.Name].Err, p.Name)
	}
	assert.Greater(t, peak(), 1, "the server never held two probes at once")
}

// holdServer starts a TCP echo server in ns that waits hold before
// answering each connection, and returns its port and a function giving
// the largest number of connections it ever held at once.
func holdServer(t *testing.T, ns *harness.NS, hold time.Duration) (uint16, func() int) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ":0")
		return err
	}))
	var (
		mu        sync.Mutex
		cur, high int
		wg        sync.WaitGroup
	)
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				mu.Lock()
				cur++
				high = max(high, cur)
				mu.Unlock()
				time.Sleep(hold)
				mu.Lock()
				cur--
				mu.Unlock()
				_ = c.SetDeadline(time.Now().Add(harness.TCPTimeout))
				if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
					_, _ = io.WriteString(c, from.String()+"\n")
				}
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port), func() int {
		mu.Lock()
		defer mu.Unlock()
		return high
	}
}

// TestContextCancel: canceling the context ends probes that are waiting
// for an answer that will never come; they report "canceled", not their
// own time limit's "timeout".
func TestContextCancel(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(false))
	c1 := tp.Containers["c1"]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan map[string]harness.Result, 1)
	go func() {
		done <- harness.RunMatrix(ctx, []harness.Probe{
			{Name: "tcp", From: c1, Kind: harness.KindTCP, To: ap(harness.InternetAddr4, 80)},
			{Name: "udp", From: c1, Kind: harness.KindUDP, To: ap(harness.InternetAddr4, 80)},
			{Name: "icmp", From: c1, Kind: harness.KindICMP, To: ap(harness.InternetAddr4, 0)},
		})
	}()
	// The UDP probe is in flight once the Internet has its datagram (whose
	// answer cannot come back: no masquerade).
	require.True(t, tp.Internet.SawFrom("udp", harness.EchoPort, c1.Addr4), "the UDP probe never arrived")
	cancel()
	select {
	case res := <-done:
		for name, r := range res {
			assert.Equal(t, harness.Canceled, r.Err, name)
		}
	case <-time.After(time.Minute):
		t.Fatal("RunMatrix did not return after its context was canceled")
	}
}

func TestTwin(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	a, b := harness.NewTwin(t, twoContainers(false))
	require.NotEqual(t, a.Prefix, b.Prefix)
	matrix := func(tp *harness.Topology) map[string]harness.Result {
		return harness.RunMatrix(context.Background(), []harness.Probe{
			{Name: "c1->c2", From: tp.Containers["c1"], Kind: harness.KindTCP, To: ap(c2Addr4, 80)},
			{Name: "c1->inet", From: tp.Containers["c1"], Kind: harness.KindTCP, To: ap(harness.InternetAddr4, 80)},
		})
	}
	ra, rb := matrix(a), matrix(b)
	assert.Empty(t, harness.DiffMatrix(ra, rb))
	rb["c1->c2"] = harness.Result{Err: harness.Timeout}
	assert.Equal(t, []string{"c1->c2: ok from 172.18.0.2 != timeout"}, harness.DiffMatrix(ra, rb))
}

// TestDoRestores checks, on one locked thread, that Do enters the
// namespace and then puts the thread back where it was; and that no
// thread is left in the namespace afterwards.
func TestDoRestores(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, harness.Spec{})
	lan, err := netns.GetFromPath(tp.LAN.Path())
	require.NoError(t, err)
	defer lan.Close()

	func() {
		// Do locks the thread too; the lock count keeps us on this thread
		// after Do unlocks once, so before, inside and after are the same
		// thread's namespaces.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := syscall.Gettid()
		before, err := netns.Get()
		require.NoError(t, err)
		defer before.Close()
		require.False(t, before.Equal(lan))
		var inside netns.NsHandle
		var insideTid int
		require.NoError(t, tp.LAN.Do(func() error {
			insideTid = syscall.Gettid()
			var err error
			inside, err = netns.Get()
			return err
		}))
		defer inside.Close()
		assert.Equal(t, tid, insideTid, "Do ran fn on another thread")
		assert.True(t, inside.Equal(lan), "Do did not enter the namespace")
		after, err := netns.Get()
		require.NoError(t, err)
		defer after.Close()
		assert.Equal(t, tid, syscall.Gettid())
		assert.True(t, after.Equal(before), "Do did not restore the thread's namespace")
	}()

	for range 50 { // whichever thread runs us now must not be in LAN
		cur, err := netns.Get()
		require.NoError(t, err)
		assert.False(t, cur.Equal(lan), "thread left in the LAN namespace")
		cur.Close()
	}
}

func TestInvalidSpec(t *testing.T) {
	for name, spec := range map[string]harness.Spec{
		"unknown bridge": {Containers: []harness.ContainerSpec{{Name: "x", Bridge: "nope"}}},
		"long bridge":    {Bridges: []harness.BridgeSpec{{Name: "a-very-long-bridge-name"}}},
		"outside subnet": {
			Bridges:    []harness.BridgeSpec{{Name: "br0", Gateway4: gw4}},
			Containers: []harness.ContainerSpec{{Name: "x", Bridge: "br0", Addr4: netip.MustParseAddr("10.0.0.2")}},
		},
		"overlaps LAN": {Bridges: []harness.BridgeSpec{{Name: "br0", Gateway4: netip.MustParsePrefix("192.0.2.129/25")}}},
	} {
		t.Run(name, func(t *testing.T) {
			ft := &fatalRecorder{TB: t}
			func() {
				defer func() { _ = recover() }()
				harness.New(ft, spec)
			}()
			assert.True(t, ft.fatal, "New accepted an invalid spec")
		})
	}
}

// TestBuildFailureCleansUp makes the build fail after all namespaces
// exist (two echo servers on one port) and checks that they are removed.
func TestBuildFailureCleansUp(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	spec := twoContainers(false)
	spec.Containers[0].TCPPorts = []uint16{8080, 8080}
	var msg string
	t.Run("build", func(t *testing.T) {
		ft := &fatalRecorder{TB: t}
		func() {
			defer func() { _ = recover() }()
			harness.New(ft, spec)
		}()
		require.True(t, ft.fatal, "New succeeded")
		msg = ft.msg
	})
	prefix := regexp.MustCompile(`dnft-[0-9a-f]{6}-`).FindString(msg)
	require.NotEmpty(t, prefix, "no prefix in %q", msg)
	assert.Contains(t, msg, "address already in use")
	assert.Empty(t, netnsWithPrefix(t, prefix))
}

// fatalRecorder turns Fatal into a recorded message plus a panic that the
// test recovers from, so failures inside New can be tested.
type fatalRecorder struct {
	testing.TB
	fatal bool
	msg   string
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.fatal, f.msg = true, fmt.Sprint(args...)
	panic("fatal")
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fatal, f.msg = true, fmt.Sprintf(format, args...)
	panic("fatal")
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	var prefix string
	t.Run("build", func(t *testing.T) {
		tp := harness.New(t, twoContainers(true))
		prefix = tp.Prefix
		assert.Len(t, netnsWithPrefix(t, prefix), 5, "host, lan, inet, c1, c2")
	})
	assert.Empty(t, netnsWithPrefix(t, prefix))
}

func netnsWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	require.NoError(t, err, string(out))
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// TestClassification checks how firewall verdicts show up in Result.Err.
func TestClassification(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, twoContainers(false))
	ctx := context.Background()
	c1, c2 := tp.Containers["c1"], tp.Containers["c2"]
	for _, p := range []uint16{81, 82, 84} {
		c2.ServeTCP(t, p)
	}
	c2.ServeUDP(t, 83)
	c2.ServeUDP(t, 85)
	_, err := tp.Host.RunStdin(ctx, `
table inet t {
	chain forward {
		type filter hook forward priority 0;
		ip daddr 172.18.0.3 tcp dport 81 reject with icmpx type admin-prohibited
		ip daddr 172.18.0.3 tcp dport 82 reject with tcp reset
		ip daddr 172.18.0.3 udp dport 83 reject with icmpx type admin-prohibited
		ip daddr 172.18.0.3 tcp dport 84 drop
		ip daddr 172.18.0.3 icmp type echo-request reject with icmp type admin-prohibited
	}
}`, "nft", "-f", "-")
	require.NoError(t, err)
	_, err = tp.LAN.RunStdin(ctx, `
table ip t {
	chain output {
		type filter hook output priority 0;
		udp dport 85 drop
		ip daddr 172.18.0.2 icmp type echo-request drop
	}
}`, "nft", "-f", "-")
	require.NoError(t, err)
	require.NoError(t, tp.LAN.AddRoute(ctx, subnet4, harness.LANHostAddr4))

	res := harness.RunMatrix(ctx, []harness.Probe{
		{Name: "tcp-admin", From: tp.LAN, Kind: harness.KindTCP, To: ap(c2.Addr4, 81)},
		{Name: "tcp-reset", From: tp.LAN, Kind: harness.KindTCP, To: ap(c2.Addr4, 82)},
		{Name: "udp-admin", From: tp.LAN, Kind: harness.KindUDP, To: ap(c2.Addr4, 83)},
		{Name: "tcp-drop", From: tp.LAN, Kind: harness.KindTCP, To: ap(c2.Addr4, 84)},
		{Name: "icmp-admin", From: tp.LAN, Kind: harness.KindICMP, To: ap(c2.Addr4, 0)},
		{Name: "udp-out-drop", From: tp.LAN, Kind: harness.KindUDP, To: ap(c2.Addr4, 85)},
		{Name: "icmp-out-drop", From: tp.LAN, Kind: harness.KindICMP, To: ap(c1.Addr4, 0)},
		{Name: "tcp-ok", From: tp.LAN, Kind: harness.KindTCP, To: ap(c2.Addr4, 80)},
	})
	want := map[string]string{
		"tcp-admin":     harness.Unreachable,
		"tcp-reset":     harness.Refused,
		"udp-admin":     harness.Unreachable,
		"tcp-drop":      harness.Timeout,
		"icmp-admin":    harness.Unreachable,
		"udp-out-drop":  harness.Denied,
		"icmp-out-drop": harness.Denied,
		"tcp-ok":        "ok from 192.0.2.2",
	}
	for name, w := range want {
		assert.Equal(t, w, res[name].String(), name)
	}
}
