package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

type demoOptions struct {
	keep, ipv6 bool
}

func newDemoCmd(a *app) *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show dnft at work in throwaway network namespaces",
		Long: `Build a small Docker-like setup in throwaway network namespaces
(` + demoNSPrefix + `XXXX-host, -lan, -inet, -web, -db, -other), program the host
namespace through the dnft library, send real traffic and report whether
each connection behaves as Docker's iptables rules would make it behave.
Then print the host's nft ruleset and networks.

The caller's network namespace is never touched. Everything is removed
at the end, also when interrupted, unless --keep is given. Needs root.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if a.netns != "" {
				return usageErrorf("demo: --netns does not apply: the demo creates its own namespaces")
			}
			return runDemo(c.Context(), c.OutOrStdout(), o)
		},
	}
	c.Flags().BoolVar(&o.keep, "keep", false, "keep the namespaces afterwards, to explore them")
	c.Flags().BoolVar(&o.ipv6, "ipv6", false, "also program and check IPv6")
	return c
}

// Echo server ports.
const (
	demoWebPort  = 80
	demoDBPort   = 5432
	demoInetPort = 80
)

func runDemo(ctx context.Context, w io.Writer, o demoOptions) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("demo: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("demo: needs iproute2: %w", err)
	}
	t, err := newDemoTopo(o.ipv6)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(w, "dnft demo in throwaway namespaces %s{%s}\n", t.prefix, strings.Join(demoRoles, ","))
	defer func() { err = errors.Join(err, finishDemo(w, t, o.keep)) }()

	if err := t.build(ctx); err != nil {
		return fmt.Errorf("demo: build namespaces: %w", err)
	}
	writeDemoTopology(w, t)

	host := t.path(roleHost)
	fmt.Fprintf(w, "\nProgramming %s through the dnft library:\n", t.name(roleHost))
	fmt.Fprintf(w, "  dnft.Open(ctx, %q)\n", host)
	fw, err := dnft.Open(ctx, host)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	t.closers = append(t.closers, fw.Close)
	d := dnft.DaemonConfig{UserlandProxy: true, IPv6: o.ipv6}
	if o.ipv6 {
		fmt.Fprintln(w, "  fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPv6: true})")
	} else {
		fmt.Fprintln(w, "  fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true})")
	}
	if err := fw.Init(ctx, d); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, br := range demoBridges {
		n := dnft.NetworkConfig{Name: br.network, Bridge: br.name, Subnet4: br.gw4.Masked(), ICC: br.icc, Masquerade: true}
		subnets := "Subnet4: " + n.Subnet4.String()
		if o.ipv6 {
			n.Subnet6 = br.gw6.Masked()
			subnets += ", Subnet6: " + n.Subnet6.String()
		}
		fmt.Fprintf(w, "  fw.CreateNetwork(ctx, {Name: %q, Bridge: %q, %s, ICC: %t, Masquerade: %t})\n",
			n.Name, n.Bridge, subnets, n.ICC, n.Masquerade)
		if err := fw.CreateNetwork(ctx, n); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}

	checks := demoChecks(o.ipv6)
	if err := startDemoServers(t, checks); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	results := runDemoChecks(ctx, t, checks)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	differ := writeDemoChecks(w, checks, results)

	fmt.Fprintf(w, "\n--- nft list ruleset (in %s) ---\n", t.name(roleHost))
	if _, err := exec.LookPath("nft"); err != nil {
		fmt.Fprintln(w, "(nft is not installed)")
	} else {
		out, err := nsCommand(ctx, t.name(roleHost), "nft", "list", "ruleset")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		fmt.Fprint(w, out)
	}

	fmt.Fprintf(w, "\n--- dnft --netns %s network ls ---\n", t.name(roleHost))
	nets, err := fw.Networks(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := writeNetworkTable(w, nets); err != nil {
		return err
	}
	if differ > 0 {
		return fmt.Errorf("demo: %d of %d checks differ from what Docker's iptables rules would do", differ, len(checks))
	}
	return nil
}

// finishDemo removes the namespaces, or with keep says how to.
func finishDemo(w io.Writer, t *demoTopo, keep bool) error {
	if keep {
		err := t.release()
		if len(t.created) > 0 {
			fmt.Fprintf(w, "\nKept the namespaces. Explore, for example:\n  ip netns exec %s nft list ruleset\n  ip netns exec %s ping -c1 203.0.113.2\nRemove them with:\n",
				t.name(roleHost), t.name(roleWeb))
			for _, ns := range t.created {
				fmt.Fprintf(w, "  ip netns del %s\n", ns)
			}
		}
		return err
	}
	if err := t.destroy(); err != nil {
		fmt.Fprintf(w, "\nCleanup failed; remove what is left with ip netns del.\n")
		return fmt.Errorf("demo: cleanup: %w", err)
	}
	fmt.Fprintf(w, "\nRemoved the namespaces %s*.\n", t.prefix)
	return nil
}

func writeDemoTopology(w io.Writer, t *demoTopo) {
	both := func(a4, a6 netip.Prefix, bits bool) string {
		s := a4.Addr().String()
		if bits {
			s = a4.String()
		}
		if t.ipv6 {
			if bits {
				return s + " " + a6.String()
			}
			return s + " " + a6.Addr().String()
		}
		return s
	}
	fmt.Fprintln(w, "\nTopology:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  host\tlan0 %s, wan0 %s, forwarding on (the Docker host)\n",
		both(demoLANHost4, demoLANHost6, true), both(demoWANHost4, demoWANHost6, true))
	for _, br := range demoBridges {
		fmt.Fprintf(tw, "  \t%s %s\n", br.name, both(br.gw4, br.gw6, true))
	}
	var routes []string
	for _, br := range demoBridges {
		routes = append(routes, br.gw4.Masked().String())
	}
	fmt.Fprintf(tw, "  lan\t%s (LAN neighbour), routes %s via %s\n", both(demoLANPeer4, demoLANPeer6, false),
		strings.Join(routes, " and "), demoLANHost4.Addr())
	fmt.Fprintf(tw, "  inet\t%s (internet server), echo server on port %d, no route to the containers\n",
		both(demoWANPeer4, demoWANPeer6, false), demoInetPort)
	ports := map[string]int{roleWeb: demoWebPort, roleDB: demoDBPort}
	for _, c := range demoContainers {
		a := both(netip.PrefixFrom(c.addr4, 0), netip.PrefixFrom(c.addr6, 0), false)
		fmt.Fprintf(tw, "  %s\t%s on %s", c.role, a, c.bridge.name)
		if p, ok := ports[c.role]; ok {
			fmt.Fprintf(tw, ", echo server on port %d", p)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// demoCheck is one connection and what Docker's rules would do with it.
type demoCheck struct {
	from    string         // role that connects
	to      string         // role of the echo server
	dst     netip.AddrPort // its address
	routed  bool           // the LAN routes straight to a container address
	rule    string         // the Docker rule at stake
	want    string         // outcome with Docker's rules
	wantSaw netip.Addr     // source the server sees with Docker's rules
}

func demoChecks(ipv6 bool) []demoCheck {
	web, db := demoContainerByRole(roleWeb), demoContainerByRole(roleDB)
	family := func(v6 bool) []demoCheck {
		pick := func(a4, a6 netip.Addr) netip.Addr {
			if v6 {
				return a6
			}
			return a4
		}
		return []demoCheck{
			{from: roleWeb, to: roleInet, dst: netip.AddrPortFrom(pick(demoWANPeer4.Addr(), demoWANPeer6.Addr()), demoInetPort),
				rule: "masquerade", want: outcomeOK, wantSaw: pick(demoWANHost4.Addr(), demoWANHost6.Addr())},
			{from: roleWeb, to: roleDB, dst: netip.AddrPortFrom(pick(db.addr4, db.addr6), demoDBPort),
				rule: "icc on", want: outcomeOK, wantSaw: pick(web.addr4, web.addr6)},
			{from: roleOther, to: roleWeb, dst: netip.AddrPortFrom(pick(web.addr4, web.addr6), demoWebPort),
				rule: "isolation", want: outcomeBlocked},
			{from: roleLAN, to: roleWeb, dst: netip.AddrPortFrom(pick(web.addr4, web.addr6), demoWebPort), routed: true,
				rule: "direct routing (protected mode)", want: outcomeBlocked},
		}
	}
	checks := family(false)
	if ipv6 {
		checks = append(checks, family(true)...)
	}
	return checks
}

// startDemoServers starts one echo server per destination of the checks.
func startDemoServers(t *demoTopo, checks []demoCheck) error {
	seen := map[netip.AddrPort]bool{}
	for _, c := range checks {
		if seen[c.dst] {
			continue
		}
		seen[c.dst] = true
		if err := t.serve(c.to, c.dst); err != nil {
			return err
		}
	}
	return nil
}

// runDemoChecks runs all checks at once; blocked ones take demoTimeout.
func runDemoChecks(ctx context.Context, t *demoTopo, checks []demoCheck) []probeResult {
	results := make([]probeResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			results[i] = probeTCP(ctx, t.path(c.from), c.dst)
			if results[i].outcome == outcomeBlocked {
				// A first packet can be late on a loaded machine; what a
				// firewall drops is dropped again.
				results[i] = probeTCP(ctx, t.path(c.from), c.dst)
			}
		})
	}
	wg.Wait()
	return results
}

// writeDemoChecks prints the checks as a table and returns how many
// differ from Docker.
func writeDemoChecks(w io.Writer, checks []demoCheck, results []probeResult) (differ int) {
	fmt.Fprintln(w, "\nTraffic (✓ = same result as with Docker's iptables rules):")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tCONNECTION\tRULE\tDOCKER\tDNFT")
	for i, c := range checks {
		r := results[i]
		mark := "✓"
		if r.outcome != c.want || (c.wantSaw.IsValid() && r.saw != c.wantSaw) {
			mark = "✗"
			differ++
		}
		conn := fmt.Sprintf("%s → %s %s", demoDisplay(c.from), demoDisplay(c.to), c.dst)
		if c.routed {
			conn += " (routed)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", mark, conn, c.rule, dockerOutcome(c), demoOutcome(r.outcome, r.saw, r.err))
	}
	tw.Flush()
	if differ == 0 {
		fmt.Fprintf(w, "All %d checks behave as with Docker.\n", len(checks))
	} else {
		fmt.Fprintf(w, "%d of %d checks differ from Docker.\n", differ, len(checks))
	}
	return differ
}

// demoDisplay names a role in the report.
func demoDisplay(role string) string {
	switch role {
	case roleLAN:
		return "LAN"
	case roleInet:
		return "internet"
	}
	return role
}

func dockerOutcome(c demoCheck) string {
	if c.want == outcomeBlocked {
		return "blocked (dropped)"
	}
	return demoOutcome(c.want, c.wantSaw, nil)
}

func demoOutcome(outcome string, saw netip.Addr, err error) string {
	switch {
	case outcome == outcomeOK && saw.IsValid():
		return "ok, seen from " + saw.String()
	case outcome == outcomeBlocked:
		return fmt.Sprintf("blocked (no answer in %v)", demoTimeout)
	case err != nil:
		return outcome + ": " + err.Error()
	}
	return outcome
}
