package integration_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// editsSetup builds a host with one network, ICC off, and two
// containers: c1 (172.17.0.2) publishes its port 80 as 8080, c2
// (172.17.0.3) its port 80 as 8082; c1's port 81 is not published. The
// state is saved to a file.
func editsSetup(ctx context.Context, t *testing.T) (topo *harness.Topology, state string) {
	t.Helper()
	harness.RequireRoot(t)
	topo = harness.New(t, harness.Spec{
		Bridges: []harness.BridgeSpec{{Name: "docker0", Gateway4: pfx("172.17.0.1/16")}},
		Containers: []harness.ContainerSpec{
			{Name: "c1", Bridge: "docker0", Addr4: ip("172.17.0.2"), TCPPorts: []uint16{80, 81}},
			{Name: "c2", Bridge: "docker0", Addr4: ip("172.17.0.3"), TCPPorts: []uint16{80}},
		},
	})
	h := topo.Host
	mustCLI(ctx, t, h, "init")
	mustCLI(ctx, t, h, "network", "create", "bridge", "--bridge", "docker0", "--subnet", "172.17.0.0/16", "-o", "com.docker.network.bridge.enable_icc=false")
	mustCLI(ctx, t, h, "port", "publish", "bridge", "172.17.0.2", "-p", "8080:80")
	mustCLI(ctx, t, h, "port", "publish", "bridge", "172.17.0.3", "-p", "8082:80")
	state = filepath.Join(t.TempDir(), "state.json")
	mustCLI(ctx, t, h, "save", "-o", state)
	return topo, state
}

// flows is what the packets of the edits topology do.
type flows struct {
	port8080, port8082, forged9090, icc bool
}

func probeFlows(ctx context.Context, topo *harness.Topology) flows {
	lan := func(port uint16) bool { return topo.LAN.TCP(ctx, addrPort(harness.LANHostAddr4, port)).OK }
	return flows{
		port8080:   lan(8080),
		port8082:   lan(8082),
		forged9090: lan(9090),
		icc:        topo.Containers["c1"].TCP(ctx, addrPort(ip("172.17.0.3"), 80)).OK,
	}
}

// good is what the packets do as dnft programmed them: both published
// ports reachable, nothing else, no ICC.
var good = flows{port8080: true, port8082: true}

// kernelEdit is one edit of dnft's tables behind its back, with the nft
// command.
type kernelEdit struct {
	name string
	do   func(ctx context.Context, t *testing.T, h *harness.NS)
	// finding is (part of) a line dnft check prints.
	finding string
	// broken is what the packets do after the edit.
	broken flows
	// unknown is set when dnft's records alone cannot tell what is right
	// (two valid copies of a record that contradict each other): dnft
	// repair then refuses and changes nothing; --state and watch repair.
	unknown bool
}

// replaceRule replaces the rule of a chain of dnft's table of family
// (ip, ip6, bridge) whose listing contains match with rule (nft syntax).
func replaceRule(ctx context.Context, t *testing.T, h *harness.NS, family, chain, match, rule string) {
	t.Helper()
	for _, line := range strings.Split(mustNft(ctx, t, h, "-a", "list", "chain", family, "dnft", chain), "\n") {
		if strings.Contains(line, match) {
			handle := line[strings.LastIndex(line, " ")+1:]
			mustNft(ctx, t, h, "replace rule "+family+" dnft "+chain+" handle "+handle+" "+rule)
			return
		}
	}
	t.Fatalf("no rule %q in chain %s %s", match, family, chain)
}

// dnatRecord returns the comment of the dnat-any element of a port.
func dnatRecord(ctx context.Context, t *testing.T, h *harness.NS, port string) string {
	t.Helper()
	out := mustNft(ctx, t, h, "list", "map", "ip", "dnft", "dnat-any")
	i := strings.Index(out, "tcp . "+port+" ")
	require.GreaterOrEqual(t, i, 0, out)
	rest := out[i:]
	start := strings.Index(rest, `comment "`) + len(`comment "`)
	return rest[start : start+strings.Index(rest[start:], `"`)]
}

var kernelEdits = []kernelEdit{
	{name: "delete a binding's DNAT element", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "delete element ip dnft dnat-any { tcp . 8080 }")
	}, finding: "ip set dnat-any element tcp . 8080: missing", broken: flows{port8082: true}},
	{name: "flush the DNAT map", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "flush map ip dnft dnat-any")
	}, finding: "ip set dnat-any element tcp . 8082: missing", broken: flows{}},
	{name: "flush the skip set", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "flush set ip dnft dnat-skip-any")
	}, finding: `ip set dnat-skip-any element "docker0" . tcp . 8080: missing`, broken: good},
	{name: "delete a network record", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, `delete element ip dnft networks { "docker0" }`)
	}, finding: `ip set networks element "docker0": missing`, broken: good},
	{name: "flush the forward-out map", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "flush map ip dnft forward-out")
	}, finding: `ip set forward-out element "docker0": missing`, broken: good},
	{name: "forge a DNAT element", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, `add element ip dnft dnat-any { tcp . 9090 comment "dnft1;net=bridge;q=1" : 172.17.0.2 . 81 }`)
	}, finding: "ip set dnat-any element tcp . 9090: not dnft's", broken: good},
	{name: "change a DNAT target out of the subnet", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		rec := dnatRecord(ctx, t, h, "8080")
		mustNft(ctx, t, h, "delete element ip dnft dnat-any { tcp . 8080 }; add element ip dnft dnat-any { tcp . 8080 comment \""+rec+"\" : 10.99.0.5 . 80 }")
	}, finding: "ip set dnat-any element tcp . 8080: changed (10.99.0.5:80", broken: flows{port8082: true}},
	{name: "change a DNAT target to another container", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		rec := dnatRecord(ctx, t, h, "8080")
		mustNft(ctx, t, h, "delete element ip dnft dnat-any { tcp . 8080 }; add element ip dnft dnat-any { tcp . 8080 comment \""+rec+"\" : 172.17.0.3 . 80 }")
	}, finding: "ip set dnat-any element tcp . 8080: changed (172.17.0.3:80", broken: good, unknown: true},
	// ICC off is enforced twice (the bridge table's drop of frames within
	// the subnet, and FORWARD__B's drop when br_netfilter passes them to
	// the IP hooks): one changed rule does not open it, but is drift.
	{name: "change the bridge ICC rule under its comment", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		replaceRule(ctx, t, h, "bridge", "filter-FORWARD", `comment "ICC"`, `counter accept comment "ICC"`)
	}, finding: `bridge chain filter-FORWARD rule "ICC"`, broken: good},
	{name: "change the ICC rule under its comment", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		replaceRule(ctx, t, h, "ip", "FORWARD__docker0", `comment "ICC"`, `counter accept comment "ICC"`)
	}, finding: `ip chain FORWARD__docker0 rule "ICC"`, broken: good},
	{name: "change the DNAT rule under its comment", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		replaceRule(ctx, t, h, "ip", "nat-DOCKER", `comment "DNAT ALL ADDRESSES"`, `counter return comment "DNAT ALL ADDRESSES"`)
	}, finding: `ip chain nat-DOCKER rule "DNAT ALL ADDRESSES"`, broken: flows{}},
	{name: "change a base chain's policy", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "chain ip dnft raw-PREROUTING { policy drop; }")
	}, finding: "ip chain raw-PREROUTING: changed (type filter hook prerouting priority -300 policy drop", broken: flows{}},
}

// TestRepairEdits: after each kind of edit of dnft's tables, dnft check
// reports it (exit 1), and dnft repair — from the records alone, or from
// a saved state — restores exactly what was published, proven with
// packets: no binding or network is lost, nothing forged is completed,
// ICC stays off.
func TestRepairEdits(t *testing.T) {
	ctx := testContext(t)
	topo, state := editsSetup(ctx, t)
	h := topo.Host
	before := statelessRuleset(ctx, t, h)
	require.Equal(t, good, probeFlows(ctx, topo))
	for _, withState := range []bool{false, true} {
		for _, e := range kernelEdits {
			name := e.name
			if withState {
				name += " (--state)"
			}
			t.Run(name, func(t *testing.T) {
				if statelessRuleset(ctx, t, h) != before { // an earlier subtest failed
					mustCLI(ctx, t, h, "repair", "--state", state)
				}
				e.do(ctx, t, h)
				require.Equal(t, e.broken, probeFlows(ctx, topo), "what the edit does to packets")
				var args []string
				if withState {
					args = []string{"--state", state}
				}
				r := dnftCLI(ctx, t, h, "", append([]string{"check"}, args...)...)
				require.Equal(t, 1, r.code, "check: %s %s", r.stdout, r.stderr)
				require.Contains(t, r.stdout, e.finding)
				if e.unknown && !withState {
					require.Contains(t, r.stdout, "state: unknown")
					damaged := statelessRuleset(ctx, t, h)
					r = dnftCLI(ctx, t, h, "", "repair")
					require.Equal(t, 1, r.code, r.stderr)
					require.Contains(t, r.stderr, "pass a state saved with dnft save")
					require.Equal(t, damaged, statelessRuleset(ctx, t, h), "a refused repair changes nothing")
					args = []string{"--state", state}
				}
				mustCLI(ctx, t, h, append([]string{"repair"}, args...)...)
				require.Equal(t, before, statelessRuleset(ctx, t, h))
				require.Equal(t, "", mustCLI(ctx, t, h, "check"))
				require.Equal(t, good, probeFlows(ctx, topo))
			})
		}
	}
}

// TestWatchEdits: a running dnft watch restores exactly what was
// published after each kind of edit, proven with packets. (The wait is
// generous: a loaded machine delays the watch, never the outcome.)
func TestWatchEdits(t *testing.T) {
	ctx := testContext(t)
	topo, _ := editsSetup(ctx, t)
	h := topo.Host
	before := statelessRuleset(ctx, t, h)
	var logs lockedBuf
	cmd := exec.CommandContext(ctx, dnftBinary(t), "--netns", h.Path(), "watch")
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	require.True(t, waitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), "watching") }), "watch did not start: %s", logs.String())
	for _, e := range kernelEdits {
		t.Run(e.name, func(t *testing.T) {
			e.do(ctx, t, h)
			restored := waitFor(30*time.Second, func() bool {
				out, err := h.Run(ctx, "nft", "-s", "list", "ruleset")
				return err == nil && out == before
			})
			require.True(t, restored, "not restored within 30 s; watch log:\n%s\nruleset:\n%s", logs.String(), statelessRuleset(ctx, t, h))
			require.Equal(t, good, probeFlows(ctx, topo))
		})
	}
	t.Logf("watch log:\n%s", logs.String())
}
