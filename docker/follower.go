package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/client"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/chains"
)

// Follower keeps dnft's firewall in one network namespace in step with a
// Docker daemon started with --iptables=false: Docker's bridge networks
// become dnft networks, the ports dockerd bound for running containers
// become dnft bindings, and containers on user-defined networks get the
// rules of Docker's embedded DNS server. All state is in the kernel and
// in dockerd; a Follower only caches what it programmed, and a new one
// (after a crash) converges from whatever the kernel holds.
//
// A Follower is not safe for concurrent use.
type Follower struct {
	opt Options
	fw  *dnft.Firewall
	cli *client.Client
	// version is the Engine's version ("20.10.24"), set on connect.
	version string

	// What was last programmed, by Docker ID.
	nets map[string]bridgeNet
	ctrs map[string]ctrState
}

// ctrState is what was programmed for one running container.
type ctrState struct {
	name string
	pub  published
	dns  dnsState
}

// New connects to the firewall's namespace and prepares the Engine API
// client (which negotiates the API version, down to dockerd 20.10's
// 1.41). Nothing is programmed until [Follower.Sync] or [Follower.Run].
func New(ctx context.Context, opt Options) (*Follower, error) {
	fw, err := dnft.Open(ctx, opt.NetNS)
	if err != nil {
		return nil, err
	}
	if opt.Logf != nil {
		fw.SetWarnFunc(func(err error) { opt.logf("warning: %v", err) })
	}
	cli, err := client.NewClientWithOpts(client.WithHost(opt.host()), client.WithAPIVersionNegotiation())
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("docker client for %s: %w", opt.host(), err)
	}
	return &Follower{opt: opt, fw: fw, cli: cli, nets: map[string]bridgeNet{}, ctrs: map[string]ctrState{}}, nil
}

// Close releases the firewall and the client.
func (f *Follower) Close() error {
	return errors.Join(f.cli.Close(), f.fw.Close())
}

// Firewall returns the firewall the Follower programs.
func (f *Follower) Firewall() *dnft.Firewall { return f.fw }

// Daemon returns the dnft daemon configuration that the options map to.
// With --ip-forward (and without --ip-forward-no-drop) the forward chain
// drops what no rule accepts, as dockerd's iptables FORWARD policy does
// after dockerd turned forwarding on; dnft leaves the forwarding sysctl
// itself to dockerd, which sets it with or without iptables.
func (f *Follower) Daemon() dnft.DaemonConfig {
	drop := f.opt.IPForward && !f.opt.IPForwardNoDrop
	d := dnft.DaemonConfig{
		UserlandProxy:      f.opt.UserlandProxy,
		IPv6:               f.opt.IPv6,
		AllowDirectRouting: f.opt.AllowDirectRouting,
		ForwardDrop4:       drop,
		ForwardDrop6:       drop && f.opt.IPv6,
	}
	if f.Layout() == LayoutStages {
		d.Layout = chains.LayoutStages // the iptables view as the followed dockerd writes it
	}
	return d
}

// EngineVersion returns the version of the Docker Engine last connected
// to ("" before), such as "20.10.24+dfsg1".
func (f *Follower) EngineVersion() string { return f.version }

// Layout returns the iptables layout of the Engine last connected to
// (see [LayoutOf]); [Follower.Daemon] records it, so that the iptables
// view of the namespace is printed in it.
func (f *Follower) Layout() Layout { return LayoutOf(f.version) }

// Layout is the iptables layout of a Docker Engine version.
type Layout int

// Iptables layouts.
const (
	// LayoutClassic is the layout of CONTRACT.md (one DOCKER-ISOLATION
	// chain), the default of the iptables view.
	LayoutClassic Layout = iota
	// LayoutStages is Docker 17.06–27's DOCKER-ISOLATION-STAGE-1/2.
	LayoutStages
)

// LayoutOf returns the iptables layout that Docker Engine version v
// (such as "20.10.24+dfsg1") programs. It is the hook for the iptables
// view of a followed daemon: versions 17.06 to 27 use the two isolation
// stages; older, newer or unparseable versions the classic layout.
func LayoutOf(v string) Layout {
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return LayoutClassic
	}
	switch {
	case ma == 17 && mi >= 6, ma > 17 && ma <= 27:
		return LayoutStages
	}
	return LayoutClassic
}

// sortedNets returns the known networks, oldest first.
func sortedNets(nets map[string]bridgeNet) []bridgeNet {
	out := make([]bridgeNet, 0, len(nets))
	for _, n := range nets {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b bridgeNet) int {
		if a.created != b.created {
			if a.created < b.created {
				return -1
			}
			return 1
		}
		return strings.Compare(a.config.Name, b.config.Name)
	})
	return out
}
