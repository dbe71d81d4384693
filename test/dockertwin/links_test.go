package dockertwin

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// recreatedBridge: with the userland proxy off, a bridge of a followed
// network that is deleted and created again (and a port that joins it)
// gets the settings dockerd gave it at creation — route_localnet on the
// bridge (the docker side is the reference), dnft's per-bridge netfilter
// option and hairpin mode on its ports — from `dnft docker` itself,
// without its drift watch. It returns the `dnft docker` process running
// at the end; the dnft side's default bridge is unusable afterwards.
func recreatedBridge(t *testing.T, ctx context.Context, bin string, sides []*Side, fol *Follower) *Follower {
	dk, df := sides[0], sides[1]
	if v, err := dk.Topo.Host.Sysctl("net/ipv4/conf/docker0/route_localnet"); err != nil || v != "1" {
		t.Fatalf("docker: docker0's route_localnet is %q (%v), want 1 with the userland proxy off", v, err)
	}
	if err := fol.Stop(); err != nil {
		t.Fatal(err)
	}
	fol = StartFollower(t, bin, df, "--userland-proxy=false", "--watch=false")
	const port = "dnft-port0"
	for _, args := range [][]string{
		{"link", "del", "docker0"},
		{"link", "add", "docker0", "type", "bridge"},
		{"link", "add", port, "type", "veth", "peer", "name", "dnft-port1"},
		{"link", "set", port, "master", "docker0"},
		{"link", "set", "docker0", "up"},
	} {
		if out, err := df.Topo.Host.Run(ctx, append([]string{"ip"}, args...)...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	err := eventually(ctx, func() error { return bridgeSettings(ctx, df, "docker0", port) })
	if err != nil {
		t.Fatalf("dnft: docker0 created again: %v\n%s", err, fol.Log())
	}
	return fol
}

// bridgeSettings checks that bridge and its port have the settings dnft
// keeps with the userland proxy off.
func bridgeSettings(ctx context.Context, s *Side, bridge, port string) error {
	h := s.Topo.Host
	if v, err := h.Sysctl("net/ipv4/conf/" + bridge + "/route_localnet"); err != nil || v != "1" {
		return fmt.Errorf("%s's route_localnet is %q (%v), want 1", bridge, v, err)
	}
	for _, c := range []struct{ link, want string }{{bridge, "nf_call_iptables 1"}, {port, "hairpin on"}} {
		out, err := h.Run(ctx, "ip", "-d", "link", "show", "dev", c.link)
		if err != nil {
			return fmt.Errorf("ip -d link show dev %s: %w: %s", c.link, err, out)
		}
		if !strings.Contains(out, c.want) {
			return fmt.Errorf("%s has no %q: %s", c.link, c.want, out)
		}
	}
	return nil
}
