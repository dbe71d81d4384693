package dockertwin

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// knownDiffs are the probes where dnft docker may still differ from
// dockerd 20.10's own iptables, with the reason. A difference anywhere
// else fails the test.
var knownDiffs = map[string]string{}

// TestTwin is the end-to-end proof that `dnft docker` makes a dockerd
// started with --iptables=false (no iptables binary on its PATH) behave
// like the same dockerd with its own iptables: two daemons in two
// namespaces get the same networks and containers, and every probe of
// the matrix must have the same outcome and the same source address on
// both sides. Then the lifecycle: stopped containers, a new address
// after a restart, a removed network, `dnft docker` killed with SIGKILL
// while containers start, and dockerd restarted under a running dnft
// docker; last, a bridge deleted and created again gets its settings.
func TestTwin(t *testing.T) {
	RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dk, df, sides, fol, bin := newTwin(t, ctx)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnft docker log:\n%s", fol.Log())
		}
	})

	both(t, sides, func(s *Side) error { return setupScenario(ctx, s) })
	envs := newEnvs(t, ctx, sides)
	// dnft docker follows asynchronously: wait for its last port.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	if _, err := WaitAnswer(wctx, df.Topo.LAN, "tcp", netip.AddrPortFrom(harness.LANHostAddr4, 8085), harness.LANAddr4); err != nil {
		t.Fatalf("dnft side never programmed: %v\n%s", err, fol.Log())
	}
	wcancel()

	t.Run("matrix", func(t *testing.T) { compareMatrix(t, ctx, sides, envs, "proxy, --allow-direct-routing") })

	t.Run("run -p until answering", func(t *testing.T) { timeRunPublish(t, ctx, sides) })
	fol = lifecycle(t, ctx, bin, sides, fol)
	envs = newEnvs(t, ctx, sides)
	t.Run("matrix after the lifecycle", func(t *testing.T) {
		compareMatrix(t, ctx, sides, envs, "after the lifecycle and a dockerd restart")
	})
	t.Run("userland proxy off", func(t *testing.T) {
		if err := fol.Stop(); err != nil {
			t.Fatal(err)
		}
		both(t, sides, func(s *Side) error { return s.D.Restart([]string{"--userland-proxy=false"}) })
		fol = StartFollower(t, bin, df, "--allow-direct-routing", "--userland-proxy=false")
		waitSettled(t, ctx, sides, fol)
		envs = newEnvs(t, ctx, sides)
		compareMatrix(t, ctx, sides, envs, "userland proxy off (hairpin), --allow-direct-routing")
	})
	t.Run("default blocks direct routing", func(t *testing.T) {
		if err := fol.Stop(); err != nil {
			t.Fatal(err)
		}
		fol = StartFollower(t, bin, df, "--once", "--userland-proxy=false")
		if err := waitExit(ctx, fol); err != nil {
			t.Fatalf("%v\n%s", err, fol.Log())
		}
		fol = StartFollower(t, bin, df, "--userland-proxy=false")
		web := envs["dnft"].addr["a1"]
		for _, s := range sides {
			e := envs[s.Name]
			direct := s.Topo.LAN.TCP(ctx, netip.AddrPortFrom(web, 80))
			viaHost := s.Topo.LAN.TCP(ctx, netip.AddrPortFrom(harness.LANHostAddr4, 8082))
			t.Logf("%s: lan->%s:80 direct: %s; lan->host:8082: %s", s.Name, e.addr["a1"], direct, viaHost)
			wantDirect := s.Name == "docker" // 20.10 has no protection; dnft's default is Docker 28's
			if direct.OK != wantDirect || !viaHost.OK || viaHost.Seen != harness.LANAddr4 {
				t.Errorf("%s: direct %s (want ok=%v), via host %s (want ok from %s)", s.Name, direct, wantDirect, viaHost, harness.LANAddr4)
			}
		}
	})

	t.Run("bridge created again", func(t *testing.T) { fol = recreatedBridge(t, ctx, bin, sides, fol) })

	// For the iptables view (issue #15): the real dockerd's iptables-save
	// and dnft's view of the same Docker state, side by side.
	if path := os.Getenv("DNFT_TWIN_IPTABLES_SAVE"); path != "" {
		out, err := dk.IptablesSave(ctx)
		if err != nil {
			t.Fatal(err)
		}
		view, err := df.Topo.Host.Run(ctx, bin, "iptables-save")
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range map[string]string{path: out, path + ".dnft": view} {
			if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// newTwin builds the image and dnft, starts the two sides (dockerd with
// its own iptables, and dockerd --iptables=false followed by `dnft docker
// --allow-direct-routing`, as Docker 20.10 lets the LAN route to
// containers) and returns them, both, the follower and dnft's binary.
func newTwin(t *testing.T, ctx context.Context) (dk, df *Side, sides []*Side, fol *Follower, bin string) {
	t.Helper()
	img, bin := buildAll(t, ctx)
	dk = NewSide(t, "docker", Config{Iptables: true}, img)
	df = NewSide(t, "dnft", Config{}, img)
	fol = StartFollower(t, bin, df, "--allow-direct-routing")
	return dk, df, []*Side{dk, df}, fol, bin
}

// buildAll builds the image's root filesystem and the dnft command in a
// temporary directory and returns their paths.
func buildAll(tb testing.TB, ctx context.Context) (img, bin string) {
	tb.Helper()
	tmp := tb.TempDir()
	img, err := BuildImage(ctx, tmp)
	if err != nil {
		tb.Fatal(err)
	}
	bin, err = BuildDnft(ctx, tmp)
	if err != nil {
		tb.Fatal(err)
	}
	return img, bin
}

// compareMatrix runs the probes on both sides at once and fails on a
// difference that knownDiffs does not explain.
func compareMatrix(t *testing.T, ctx context.Context, sides []*Side, envs map[string]*env, pass string) map[string]map[string]string {
	t.Helper()
	res := map[string]map[string]string{}
	errs := make(chan error, len(sides))
	results := make(chan [2]any, len(sides))
	for _, s := range sides {
		go func() {
			r, err := envs[s.Name].run(ctx)
			errs <- err
			results <- [2]any{s.Name, r}
		}()
	}
	for range sides {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		r := <-results
		res[r[0].(string)] = r[1].(map[string]string)
	}
	judge(t, pass, probeNames(), res, []string{sides[0].Name, sides[1].Name})
	return res
}

// judge logs the results of the sides as a table (also appended to the
// file DNFT_TWIN_REPORT names) and fails on a difference that knownDiffs
// does not explain.
func judge(t *testing.T, pass string, names []string, res map[string]map[string]string, order []string) {
	t.Helper()
	tab, diffs := table(names, res, order)
	t.Logf("probe matrix (%s):\n%s", pass, tab)
	if path := os.Getenv("DNFT_TWIN_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "## %s\n\n%s\n", pass, tab)
			f.Close()
		}
	}
	var bad []string
	for _, d := range diffs {
		if why, ok := knownDiffs[d]; ok {
			t.Logf("known difference %q: %s", d, why)
			continue
		}
		bad = append(bad, d)
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("%d probe(s) differ: %s", len(bad), strings.Join(bad, "; "))
	}
}
