package integration_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// opsSetup builds a host with one bridge network and a container whose
// port 80 is published as 8080, programmed with the dnft command, with an
// operator's rule in DOCKER-USER, and saves the state to a file.
func opsSetup(ctx context.Context, t *testing.T) (topo *harness.Topology, state string) {
	t.Helper()
	harness.RequireRoot(t)
	topo = harness.New(t, harness.Spec{
		Bridges:    []harness.BridgeSpec{{Name: "docker0", Gateway4: pfx("172.17.0.1/16")}},
		Containers: []harness.ContainerSpec{{Name: "c1", Bridge: "docker0", Addr4: ip("172.17.0.2"), TCPPorts: []uint16{80}}},
	})
	h := topo.Host
	mustCLI(ctx, t, h, "init")
	mustCLI(ctx, t, h, "network", "create", "bridge", "--bridge", "docker0", "--subnet", "172.17.0.0/16")
	mustCLI(ctx, t, h, "port", "publish", "bridge", "172.17.0.2", "-p", "8080:80")
	mustNft(ctx, t, h, "insert rule ip dnft DOCKER-USER ip saddr 198.51.100.66 counter drop comment \"operator\"")
	state = filepath.Join(t.TempDir(), "state.json")
	mustCLI(ctx, t, h, "save", "-o", state)
	return topo, state
}

// requireFlows checks that packets flow: the published port from the
// LAN, and the container to the internet, masqueraded.
func requireFlows(ctx context.Context, t *testing.T, topo *harness.Topology) {
	t.Helper()
	lan := topo.LAN.TCP(answered(ctx), addrPort(harness.LANHostAddr4, 8080))
	require.True(t, lan.OK, "LAN -> published port: %s", lan)
	inet := topo.Containers["c1"].TCP(answered(ctx), addrPort(harness.InternetAddr4, harness.EchoPort))
	require.Equal(t, "ok from "+harness.WANHostAddr4.String(), inet.String(), "container -> internet (masquerade)")
}

// damage is something done to dnft's tables behind its back.
type damage struct {
	name string
	do   func(ctx context.Context, t *testing.T, h *harness.NS)
	// finding is a line dnft check must print; records says whether
	// dnft's records survive (check and repair need no saved state),
	// userLost whether the operator's DOCKER-USER rules went too (repair
	// takes them from the saved state).
	finding           string
	records, userLost bool
	// lanFails and inetFails say which flow the damage breaks.
	lanFails, inetFails bool
}

var damages = []damage{
	{name: "flush ruleset", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "flush", "ruleset")
	}, finding: "ip table dnft: missing", lanFails: true, inetFails: true},
	{name: "delete table", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "delete", "table", "ip", "dnft")
	}, finding: "ip table dnft: missing", lanFails: true, inetFails: true},
	{name: "flush table", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		mustNft(ctx, t, h, "flush", "table", "ip", "dnft")
	}, finding: `ip chain filter-FORWARD rule "DOCKER-USER": missing`, records: true, userLost: true, lanFails: true, inetFails: true},
	{name: "delete jump", do: func(ctx context.Context, t *testing.T, h *harness.NS) {
		deleteRule(ctx, t, h, "nat-PREROUTING", `comment "DOCKER"`)
	}, finding: `ip chain nat-PREROUTING rule "DOCKER": missing`, records: true, lanFails: true},
}

// deleteRule deletes the rule of a chain of ip dnft whose listing
// contains match.
func deleteRule(ctx context.Context, t *testing.T, h *harness.NS, chain, match string) {
	t.Helper()
	for _, line := range strings.Split(mustNft(ctx, t, h, "-a", "list", "chain", "ip", "dnft", chain), "\n") {
		if strings.Contains(line, match) {
			handle := line[strings.LastIndex(line, " ")+1:]
			mustNft(ctx, t, h, "delete", "rule", "ip", "dnft", chain, "handle", handle)
			return
		}
	}
	t.Fatalf("no rule %q in chain %s", match, chain)
}

// TestCheckRepair: after each damage, dnft check reports it (exit 1),
// dnft repair restores a ruleset identical to before, and packets flow.
func TestCheckRepair(t *testing.T) {
	ctx := testContext(t)
	topo, state := opsSetup(ctx, t)
	h := topo.Host
	before := statelessRuleset(ctx, t, h)
	requireFlows(ctx, t, topo)
	require.Equal(t, "", mustCLI(ctx, t, h, "check"), "no drift to begin with")

	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			d.do(ctx, t, h)
			if d.lanFails {
				r := topo.LAN.TCP(ctx, addrPort(harness.LANHostAddr4, 8080))
				require.True(t, r.Blocked(), "the damage breaks the published port: %v", r)
			}
			if d.inetFails {
				r := topo.Containers["c1"].TCP(ctx, addrPort(harness.InternetAddr4, harness.EchoPort))
				require.True(t, r.Blocked(), "the damage breaks masquerade: %v", r)
			}
			var withState, repairState []string
			if d.userLost {
				repairState = []string{"--state", state}
			}
			if !d.records {
				// Without dnft's records the state is unknown: check says
				// so, repair refuses and changes nothing.
				r := dnftCLI(ctx, t, h, "", "check")
				require.Equal(t, 1, r.code)
				require.Contains(t, r.stdout, "dnft's table is gone")
				damaged := statelessRuleset(ctx, t, h)
				r = dnftCLI(ctx, t, h, "", "repair")
				require.Equal(t, 1, r.code)
				require.Contains(t, r.stderr, "pass a state saved with dnft save")
				require.Equal(t, damaged, statelessRuleset(ctx, t, h))
				withState = []string{"--state", state}
				repairState = withState
			}
			r := dnftCLI(ctx, t, h, "", append([]string{"check"}, withState...)...)
			require.Equal(t, 1, r.code, "check: %s %s", r.stdout, r.stderr)
			require.Contains(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), d.finding)
			require.Contains(t, r.stderr, "drift found")

			start := time.Now()
			out := mustCLI(ctx, t, h, append([]string{"repair"}, repairState...)...)
			t.Logf("repair (one dnft process) took %s", time.Since(start).Round(time.Millisecond))
			require.Contains(t, out, "repaired: "+d.finding)
			require.Equal(t, before, statelessRuleset(ctx, t, h))
			require.Equal(t, "", mustCLI(ctx, t, h, "check"))
			require.Equal(t, "no drift\n", mustCLI(ctx, t, h, "repair"))
			requireFlows(ctx, t, topo)
		})
	}
}

// lockedBuf is a buffer that a process writes while the test reads it.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventWait bounds the wait for something a running process does in
// response to an event (a watch noticing a change, repairing it): long,
// because it only matters when the machine is loaded; how fast it
// happens is measured in benchmarks, not asserted here.
const eventWait = time.Minute

// waitFor polls cond every 5 ms until it holds or the limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestWatch: a running dnft watch restores dnft's tables after each
// damage; changes by the operator (DOCKER-USER) and by other dnft
// commands are not drift and are kept; SIGTERM stops it with exit 0.
func TestWatch(t *testing.T) {
	ctx := testContext(t)
	topo, state := opsSetup(ctx, t)
	h := topo.Host
	var logs lockedBuf
	cmd := exec.CommandContext(ctx, dnftBinary(t), "--netns", h.Path(), "watch", "--state", state)
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	require.True(t, waitFor(eventWait, func() bool { return strings.Contains(logs.String(), "watching") }), "watch did not start: %s", logs.String())
	checks := func() int {
		return strings.Count(logs.String(), "no drift") + strings.Count(logs.String(), "dnft's own")
	}

	// Not drift: an operator's rule, another dnft command's port.
	n := checks()
	mustNft(ctx, t, h, "insert rule ip dnft DOCKER-USER ip saddr 198.51.100.67 counter drop")
	require.True(t, waitFor(eventWait, func() bool { return checks() > n }), "the change was not checked: %s", logs.String())
	n = checks()
	mustCLI(ctx, t, h, "port", "publish", "bridge", "172.17.0.2", "-p", "8081:80")
	require.True(t, waitFor(eventWait, func() bool { return checks() > n }), "the change was not checked: %s", logs.String())
	before := statelessRuleset(ctx, t, h)
	require.Contains(t, before, "198.51.100.67")
	require.NotContains(t, logs.String(), "drift:")

	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			d.do(ctx, t, h)
			start := time.Now()
			restored := waitFor(eventWait, func() bool {
				out, err := h.Run(ctx, "nft", "-s", "list", "ruleset")
				return err == nil && out == before
			})
			took := time.Since(start)
			require.True(t, restored, "not restored; watch log:\n%s\nruleset:\n%s", logs.String(), statelessRuleset(ctx, t, h))
			t.Logf("restored %s after the damage (as polled)", took.Round(time.Millisecond))
			requireFlows(ctx, t, topo)
			require.True(t, topo.LAN.TCP(answered(ctx), addrPort(harness.LANHostAddr4, 8081)).OK, "the other command's port is kept")
		})
	}
	// dnft reset is not undone; restoring the state afterwards is kept.
	n = checks()
	mustCLI(ctx, t, h, "reset")
	require.True(t, waitFor(eventWait, func() bool { return strings.Contains(logs.String(), "nothing to restore") }), "%s", logs.String())
	require.Equal(t, "", mustNft(ctx, t, h, "list", "tables"))
	saved := mustCLI(ctx, t, h, "save")
	require.Contains(t, saved, `"daemon": null`)
	r := dnftCLI(ctx, t, h, "", "restore", state)
	require.Zero(t, r.code, r.stderr)
	require.True(t, waitFor(eventWait, func() bool { return checks() > n }), "%s", logs.String())
	mustNft(ctx, t, h, "flush", "ruleset")
	require.True(t, waitFor(eventWait, func() bool {
		out, err := h.Run(ctx, "nft", "list", "tables")
		return err == nil && strings.Contains(out, "table ip dnft")
	}), "%s", logs.String())
	// A reset is what dnft recorded before it, not a process name: nft
	// run as "dnft" is someone else, and its flush is undone.
	before = statelessRuleset(ctx, t, h)
	fake := filepath.Join(t.TempDir(), "dnft")
	nftPath, err := exec.LookPath("nft")
	require.NoError(t, err)
	require.NoError(t, os.Symlink(nftPath, fake))
	out, err := h.Run(ctx, fake, "flush", "ruleset")
	require.NoError(t, err, out)
	require.True(t, waitFor(eventWait, func() bool {
		out, err := h.Run(ctx, "nft", "-s", "list", "ruleset")
		return err == nil && out == before
	}), "a flush by a process named dnft was not restored: %s", logs.String())
	require.Contains(t, logs.String(), "change by dnft[")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(eventWait):
		_ = cmd.Process.Kill()
		err = <-exited
		t.Fatalf("watch did not exit after SIGTERM (killed: %v): %s", err, logs.String())
	}
	stopped = true
	require.NoError(t, err, "watch must exit 0 on SIGTERM: %s", logs.String())
	require.Contains(t, logs.String(), "stopped")
	t.Logf("watch log:\n%s", logs.String())
	_ = os.Remove(state)
}
