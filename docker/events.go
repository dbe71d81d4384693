package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/dnft/dnft"
)

// Run syncs and then follows dockerd's events until ctx is done (then it
// returns nil): networks created and removed, containers connected,
// disconnected, started (also with a new address after a restart), dead
// and removed, each applied as one small change. When the connection to
// dockerd drops it reconnects with exponential backoff and syncs again;
// an event it cannot apply also leads to a full sync. From the first
// sync on, it keeps the settings dnft owns on bridges and their ports
// ([dnft.Firewall.FollowLinks]), so that a bridge deleted and created
// again, or a new port, gets them at once. With Options.Watch it also
// repairs drift of dnft's tables, as `dnft watch` does. Run returns once
// they have stopped too.
func (f *Follower) Run(ctx context.Context) error {
	lo, hi := f.opt.backoff()
	wait := lo
	started := false
	var bg sync.WaitGroup // the link follower and the watch
	defer bg.Wait()
	for {
		err := f.follow(ctx, func() {
			wait = lo
			if started {
				return
			}
			started = true
			bg.Go(func() {
				f.keep(ctx, "link follower", func(ctx context.Context) error {
					return f.fw.FollowLinks(ctx, dnft.FollowOptions{Logf: f.opt.Logf})
				})
			})
			if f.opt.Watch {
				bg.Go(func() {
					f.keep(ctx, "drift watch", func(ctx context.Context) error {
						opt := dnft.WatchOptions{Logf: f.opt.Logf, Interval: f.opt.WatchInterval, NoLinks: true}
						return f.fw.Watch(ctx, opt)
					})
				})
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		f.opt.logf("%v; retrying in %s", err, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, hi)
	}
}

// keep runs fn (named what in the log) until ctx is done, restarting it
// after a failure.
func (f *Follower) keep(ctx context.Context, what string, fn func(context.Context) error) {
	for ctx.Err() == nil {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		f.opt.logf("%s: %v; restarting in 1s", what, err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// eventFilter selects the events that change the firewall.
func eventFilter() filters.Args {
	return filters.NewArgs(
		filters.Arg("type", string(events.NetworkEventType)),
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionCreate)),
		filters.Arg("event", string(events.ActionDestroy)),
		filters.Arg("event", string(events.ActionConnect)),
		filters.Arg("event", string(events.ActionDisconnect)),
		filters.Arg("event", string(events.ActionStart)),
		filters.Arg("event", string(events.ActionDie)),
	)
}

// follow subscribes to events from just before a sync, syncs (then
// calls synced), and applies events until the stream ends.
func (f *Follower) follow(ctx context.Context, synced func()) error {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	since := strconv.FormatInt(now.Unix(), 10) + "." + fmt.Sprintf("%09d", now.Nanosecond())
	msgs, errs := f.cli.Events(ectx, events.ListOptions{Since: since, Filters: eventFilter()})
	if err := f.Sync(ctx); err != nil {
		return err
	}
	synced()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("dockerd's event stream ended: %w", err)
		case m := <-msgs:
			if err := f.handle(ctx, m); err != nil {
				f.opt.logf("%s %s %.12s: %v; syncing", m.Type, m.Action, m.Actor.ID, err)
				if err := f.Sync(ctx); err != nil {
					return err
				}
			}
		}
	}
}

// handle applies one event.
func (f *Follower) handle(ctx context.Context, m events.Message) error {
	switch m.Type {
	case events.NetworkEventType:
		switch m.Action {
		case events.ActionCreate:
			return f.networkCreated(ctx, m.Actor.ID)
		case events.ActionDestroy:
			return f.networkDestroyed(ctx, m.Actor.ID)
		case events.ActionConnect, events.ActionDisconnect:
			if id := m.Actor.Attributes["container"]; id != "" {
				return f.refresh(ctx, id)
			}
		}
	case events.ContainerEventType:
		switch m.Action {
		case events.ActionStart:
			return f.refresh(ctx, m.Actor.ID)
		case events.ActionDie, events.ActionDestroy:
			return f.gone(ctx, m.Actor.ID)
		}
	}
	return nil
}

// networkCreated programs a new bridge network.
func (f *Follower) networkCreated(ctx context.Context, id string) error {
	n, err := f.cli.NetworkInspect(ctx, id, network.InspectOptions{})
	if isNotFound(err) {
		return nil // already removed again
	}
	if err != nil {
		return err
	}
	if n.Driver != "bridge" {
		return nil
	}
	bn, err := networkConfig(n, f.opt)
	if err != nil {
		f.opt.logf("skipping %v", err)
		return nil
	}
	if old, ok := f.nets[id]; ok && old.config == bn.config {
		return nil
	}
	if err := f.fw.CreateNetwork(ctx, bn.config); err != nil {
		return err
	}
	f.nets[id] = bn
	f.opt.logf("network %s: created on %s (%s)", bn.config.Name, bn.config.Bridge, bn.config.Subnet4)
	return nil
}

// networkDestroyed removes a network and, in the same batch, any binding
// left on it.
func (f *Follower) networkDestroyed(ctx context.Context, id string) error {
	n, ok := f.nets[id]
	if !ok {
		return nil
	}
	if err := f.fw.RemoveNetwork(ctx, n.config.Name, true); err != nil {
		var fe *dnft.FieldError
		if !errors.As(err, &fe) || fe.Field != "network" {
			return err
		}
	}
	delete(f.nets, id)
	for cid, st := range f.ctrs {
		if st.pub.network == n.config.Name {
			st.pub = published{}
			f.ctrs[cid] = st
		}
	}
	f.opt.logf("network %s: removed", n.config.Name)
	return nil
}

// refresh brings one container's bindings and DNS rules up to date.
func (f *Follower) refresh(ctx context.Context, id string) error {
	ci, err := f.cli.ContainerInspect(ctx, id)
	if isNotFound(err) || err == nil && (ci.State == nil || !ci.State.Running) {
		return f.gone(ctx, id)
	}
	if err != nil {
		return err
	}
	pub, _ := containerBindings(ci, f.nets, f.opt)
	old := f.ctrs[id]
	if !samePublished(old.pub, pub) {
		if len(old.pub.bindings) > 0 {
			if err := f.fw.Unpublish(ctx, old.pub.network, old.pub.bindings); err != nil {
				return err
			}
			old.pub = published{}
			f.ctrs[id] = old
		}
		if len(pub.bindings) > 0 {
			if err := f.fw.Publish(ctx, pub.network, pub.bindings); err != nil {
				return err
			}
			f.opt.logf("container %s: published %s", ci.Name, bindingList(pub.bindings))
		}
		f.logSkipped(ci, pub)
	}
	f.ctrs[id] = ctrState{name: ci.Name, pub: pub, dns: f.resolver(ctx, ci, old.dns)}
	return nil
}

// gone unpublishes the ports of a container that stopped or was removed.
func (f *Follower) gone(ctx context.Context, id string) error {
	old, ok := f.ctrs[id]
	if !ok {
		return nil
	}
	if len(old.pub.bindings) > 0 {
		if err := f.fw.Unpublish(ctx, old.pub.network, old.pub.bindings); err != nil {
			return err
		}
		f.opt.logf("container %s: unpublished %s", old.name, bindingList(old.pub.bindings))
	}
	delete(f.ctrs, id)
	return nil
}

func samePublished(a, b published) bool {
	return a.network == b.network && slices.Equal(a.bindings, b.bindings)
}

func bindingList(bs []dnft.Binding) string {
	s := ""
	for i, b := range bs {
		if i > 0 {
			s += ", "
		}
		s += b.String()
	}
	return s
}
