package dockertwin

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/dnft/dnft/test/harness"
)

// bridgeRE matches the bridge names dockerd derives from network IDs.
var bridgeRE = regexp.MustCompile(`br-[0-9a-f]{12}`)

// saveText is iptables-save output made comparable between the twins:
// date lines dropped, bridge names derived from network IDs (which differ
// between the two daemons) replaced by their network's name.
func saveText(s string, bridges map[string]string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, bridgeRE.ReplaceAllStringFunc(l, func(b string) string {
			if n, ok := bridges[b]; ok {
				return "br-<" + n + ">"
			}
			return b
		}))
	}
	return strings.Join(out, "\n")
}

// bridgeNames maps each bridge a daemon created for the twin's networks
// to the network's name.
func bridgeNames(t *testing.T, ctx context.Context, s *Side) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range twinNetworks {
		nw, err := s.D.Client.NetworkInspect(ctx, n.name, network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out["br-"+nw.ID[:12]] = n.name
	}
	return out
}

// TestLayoutStages is item 5 of issue #15: with the twin's networks and
// containers, `dnft iptables-save` of the namespace that `dnft docker`
// programs for a dockerd 20.10 (which records the stages layout for it)
// is byte for byte the iptables-save of the same dockerd programming its
// own iptables (names of bridges that derive from network IDs aside),
// and `--layout classic` still shows CONTRACT.md's layout.
func TestLayoutStages(t *testing.T) {
	RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dk, df, sides, fol, bin := newTwin(t, ctx)
	both(t, sides, func(s *Side) error { return setupScenario(ctx, s) })
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	if _, err := WaitAnswer(wctx, df.Topo.LAN, "tcp", netip.AddrPortFrom(harness.LANHostAddr4, 8085), harness.LANAddr4); err != nil {
		t.Fatalf("dnft side never programmed: %v\n%s", err, fol.Log())
	}
	wcancel()
	real, err := dk.IptablesSave(ctx)
	if err != nil {
		t.Fatal(err)
	}
	view := func(args ...string) string {
		out, err := exec.CommandContext(ctx, bin, append([]string{"--netns", df.Topo.Host.Path(), "iptables-save"}, args...)...).Output()
		if err != nil {
			t.Fatalf("dnft iptables-save %v: %v", args, err)
		}
		return string(out)
	}
	want := saveText(dropCounters(real), bridgeNames(t, ctx, dk))
	got := saveText(dropCounters(view()), bridgeNames(t, ctx, df))
	if got != want {
		t.Errorf("dnft iptables-save (recorded layout) differs from dockerd 20.10's iptables-save:\n%s\ndnft:\n%s\ndockerd:\n%s", diffLines(got, want), got, want)
	}
	if classic := view("--layout", "classic"); !strings.Contains(classic, ":DOCKER-ISOLATION - ") || strings.Contains(classic, "STAGE") {
		t.Errorf("--layout classic:\n%s", classic)
	}
}

// dropCounters blanks the [packets:bytes] of chain lines: the two sides
// see different traffic (dnft docker's and dockerd's own).
func dropCounters(s string) string {
	return regexp.MustCompile(`(?m)^(:\S+ \S+) \[\d+:\d+\]$`).ReplaceAllString(s, "$1")
}

// diffLines lists the lines only one of two texts has.
func diffLines(got, want string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	g, w := count(got), count(want)
	var out []string
	for l, n := range g {
		if w[l] != n {
			out = append(out, fmt.Sprintf("dnft %d, dockerd %d: %s", n, w[l], l))
		}
	}
	for l, n := range w {
		if _, ok := g[l]; !ok {
			out = append(out, fmt.Sprintf("dnft 0, dockerd %d: %s", n, l))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "(same lines, another order)"
	}
	return strings.Join(out, "\n")
}
