package docker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/dnft/dnft"
)

// snapshot is what dockerd reports: its bridge networks by ID and its
// running containers by ID.
type snapshot struct {
	nets map[string]bridgeNet
	ctrs map[string]container.InspectResponse
}

// snapshot lists the bridge networks and inspects every running
// container.
func (f *Follower) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{nets: map[string]bridgeNet{}, ctrs: map[string]container.InspectResponse{}}
	ns, err := f.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("driver", "bridge"))})
	if err != nil {
		return s, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range ns {
		if n.Driver != "bridge" {
			continue
		}
		bn, err := networkConfig(n, f.opt)
		if err != nil {
			f.opt.logf("skipping %v", err)
			continue
		}
		s.nets[n.ID] = bn
	}
	cs, err := f.cli.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs {
		ci, err := f.cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			if isNotFound(err) {
				continue // gone since the list
			}
			return s, fmt.Errorf("inspect container %.12s: %w", c.ID, err)
		}
		if ci.State != nil && ci.State.Running {
			s.ctrs[c.ID] = ci
		}
	}
	return s, nil
}

// Sync converges the firewall to what dockerd reports, in one batch
// ([dnft.Firewall.Apply]): networks, and the published ports of running
// containers; ingress ports and DOCKER-USER stay as they are. Then it
// programs the embedded-DNS rules of the containers that need them.
// dnft networks that are not Docker bridge networks are removed: the
// namespace's dnft state belongs to the Follower.
func (f *Follower) Sync(ctx context.Context) error {
	if err := f.connect(ctx); err != nil {
		return err
	}
	s, err := f.snapshot(ctx)
	if err != nil {
		return err
	}
	want, ctrs := f.desired(s)
	ing, err := f.fw.Ingress(ctx)
	if err != nil && !errors.Is(err, dnft.ErrNotInitialized) {
		// Damaged records: the rebuild below cannot keep them.
		f.opt.logf("cannot read ingress ports (%v): not keeping any", err)
	}
	want.Ingress = ing
	want = f.dropInvalid(want)
	plan, err := f.fw.Apply(ctx, want)
	if errors.Is(err, dnft.ErrStateUnknown) {
		f.opt.logf("dnft's records are damaged (%v): rebuilding from dockerd's state", err)
		err = f.fw.Restore(ctx, want)
	}
	if err != nil {
		f.nets, f.ctrs = map[string]bridgeNet{}, map[string]ctrState{}
		return fmt.Errorf("sync: %w", err)
	}
	if plan.Changes > 0 {
		f.opt.logf("sync: %s", oneLine(plan.String()))
	}
	f.nets = s.nets
	old := f.ctrs
	f.ctrs = ctrs
	for id, ci := range s.ctrs {
		st := f.ctrs[id]
		st.dns = old[id].dns
		st.dns = f.resolver(ctx, ci, st.dns)
		f.ctrs[id] = st
	}
	return nil
}

// connect learns the Engine's version (once per connection).
func (f *Follower) connect(ctx context.Context) error {
	v, err := f.cli.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("connect to dockerd at %s: %w", f.opt.host(), err)
	}
	if v.Version != f.version {
		f.version = v.Version
		f.opt.logf("following Docker Engine %s (API %s) at %s", v.Version, f.cli.ClientVersion(), f.opt.host())
	}
	return nil
}

// desired is the dnft state of a snapshot, and the containers' states.
func (f *Follower) desired(s snapshot) (dnft.State, map[string]ctrState) {
	d := f.Daemon()
	want := dnft.State{Daemon: &d}
	for _, n := range sortedNets(s.nets) {
		want.Networks = append(want.Networks, dnft.Network{NetworkConfig: n.config})
	}
	ctrs := map[string]ctrState{}
	ids := make([]string, 0, len(s.ctrs))
	for id := range s.ctrs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return compareStart(s.ctrs[a], s.ctrs[b]) })
	for _, id := range ids {
		ci := s.ctrs[id]
		pub, ok := containerBindings(ci, s.nets, f.opt)
		st := ctrState{name: ci.Name}
		if ok {
			st.pub = pub
			for _, b := range pub.bindings {
				want.Ports = append(want.Ports, dnft.Published{Network: pub.network, Binding: b})
			}
			f.logSkipped(ci, pub)
		}
		ctrs[id] = st
	}
	return want, ctrs
}

// compareStart orders containers by start time, then ID.
func compareStart(a, b container.InspectResponse) int {
	sa, sb := "", ""
	if a.State != nil {
		sa = a.State.StartedAt
	}
	if b.State != nil {
		sb = b.State.StartedAt
	}
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	if a.ID < b.ID {
		return -1
	}
	return 1
}

// portsField finds the index of a binding in a state error's field path.
var portsField = regexp.MustCompile(`^ports\[(\d+)\]`)

// dropInvalid removes, one by one, the bindings that dnft refuses (and
// says so), so that one binding dockerd accepted and dnft does not (an
// address conflict, say) does not keep every other change out.
func (f *Follower) dropInvalid(s dnft.State) dnft.State {
	for range len(s.Ports) + 1 {
		err := s.Validate()
		var fe *dnft.FieldError
		if err == nil || !errors.As(err, &fe) {
			return s
		}
		m := portsField.FindStringSubmatch(fe.Field)
		if m == nil {
			return s // Apply reports it
		}
		i, _ := strconv.Atoi(m[1])
		if i >= len(s.Ports) {
			return s
		}
		f.opt.logf("not publishing %s on %s: %v", s.Ports[i].Binding, s.Ports[i].Network, err)
		s.Ports = slices.Delete(slices.Clone(s.Ports), i, i+1)
	}
	return s
}

// logSkipped says which bindings of a container are left to docker-proxy.
func (f *Follower) logSkipped(ci container.InspectResponse, pub published) {
	for _, s := range pub.skipped {
		f.opt.logf("container %s: %s", ci.Name, s)
	}
}

func oneLine(s string) string {
	b := []byte(s)
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	for i := range b {
		if b[i] == '\n' {
			b[i] = ';'
		}
	}
	return string(b)
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
