package dnft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
)

// FollowOptions configure [Firewall.FollowLinks].
type FollowOptions struct {
	// Logf receives one line per setting changed and per failure; nil
	// discards them.
	Logf func(format string, args ...any)
	// Ready, when set, is called once FollowLinks receives link
	// notifications and has brought the links that exist in line.
	Ready func()
}

// FollowLinks keeps the kernel settings that dnft owns on bridges and
// their ports ([chains.LinkSettings]: route_localnet, the bridge's own
// netfilter options, hairpin mode on its ports) as dnft's state wants
// them, until ctx is done, and then returns nil. It listens to the
// namespace's link notifications: when a network's bridge appears — also
// after it was deleted and created again — or a port joins it, the
// settings are applied at once. So a runtime may create its bridges after
// the networks, and with the userland proxy off need not set hairpin mode
// itself. Long-running users (dnft watch, dnft docker) run it for the
// life of the process; Check and Repair cover the same settings.
//
// It reads dnft's state only when the ruleset changed since its last
// read, and lists the links only when a notification concerns a bridge
// that dnft keeps settings on, or one of its ports.
func (fw *Firewall) FollowLinks(ctx context.Context, opt FollowOptions) error {
	logf := opt.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	m, err := fw.conn.MonitorLinks()
	if err != nil {
		return fmt.Errorf("follow links: %w", err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	events, failed := pump(rctx, m, nft.ErrLinkEventsLost)

	f := &follower{fw: fw, logf: logf}
	if err := f.sync(ctx, "start"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("follow links: %w", err)
	}
	if opt.Ready != nil {
		opt.Ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow links: %w", err)
		case evs := <-events:
			cause, err := f.relevant(ctx, evs)
			if err == nil && cause != "" {
				err = f.sync(ctx, cause)
			}
			if err != nil && ctx.Err() == nil {
				logf("links: %v", err)
			}
		}
	}
}

// follower is FollowLinks' state between notifications.
type follower struct {
	fw   *Firewall
	logf func(format string, args ...any)
	// want is what dnft's state wanted at ruleset generation gen.
	want linkWant
	gen  uint32
	// bridges are the indexes of the wanted bridges at the last sync.
	bridges map[int]bool
}

// wanted returns what dnft's state wants of the links, read again only
// when the ruleset changed.
func (f *follower) wanted(ctx context.Context) (linkWant, error) {
	fw := f.fw
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, nets, err := fw.currentState(ctx)
	if errors.Is(err, ErrNotInitialized) {
		f.want, f.gen = nil, 0
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if f.want != nil && f.gen == fw.v.gen {
		return f.want, nil
	}
	gws, err := fw.ingressGateways4(ctx)
	if err != nil {
		return nil, err
	}
	f.want, f.gen = chains.Links(d, nets, gws), fw.v.gen
	return f.want, nil
}

// ingressGateways4 lists the gateway bridges of IPv4 ingress ports.
func (fw *Firewall) ingressGateways4(ctx context.Context) ([]string, error) {
	s, ok, err := fw.conn.ReadSet(ctx, nft.IPv4, ingress.SetGateways)
	if err != nil || !ok {
		return nil, err
	}
	var out []string
	for _, e := range s.Elements {
		v, err := nft.DecodeKey(nft.IPv4, []nft.Field{nft.FieldOIFName}, e.Key)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", ingress.SetGateways, err)
		}
		out = append(out, v[0].Name)
	}
	return out, nil
}

// relevant says why a batch of notifications needs a sync: a wanted
// bridge appeared or changed, or a port of one did; "" if none did. A
// nil batch (lost notifications) always does.
func (f *follower) relevant(ctx context.Context, evs []nft.LinkEvent) (string, error) {
	if evs == nil {
		return "lost link notifications", nil
	}
	want, err := f.wanted(ctx)
	if err != nil || len(want) == 0 {
		return "", err
	}
	for _, e := range evs {
		switch {
		case e.Deleted:
		case !want[e.Name].IsZero():
			return "link " + e.Name, nil
		case e.Master != 0 && f.bridges[e.Master]:
			return "port " + e.Name, nil
		}
	}
	return "", nil
}

// sync lists the links and applies what dnft's state wants of them.
func (f *follower) sync(ctx context.Context, cause string) error {
	want, err := f.wanted(ctx)
	if err != nil {
		return err
	}
	links, err := f.fw.conn.Links(ctx)
	if err != nil {
		return err
	}
	f.bridges = map[int]bool{}
	for _, l := range links {
		if !want[l.Name].IsZero() {
			f.bridges[l.Index] = true
		}
	}
	start := time.Now()
	fixes, err := f.fw.linkFixes(ctx, want, links)
	if err != nil {
		return err
	}
	var errs []error
	for _, x := range fixes {
		if err := x.apply(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", x.finding.Object, err))
			continue
		}
		f.logf("links (%s): %s: %s: fixed", cause, x.finding.Object, x.finding.Problem)
	}
	if len(fixes) > 0 {
		f.logf("links (%s): %d setting(s) applied in %s", cause, len(fixes)-len(errs), time.Since(start).Round(time.Microsecond))
	}
	return errors.Join(errs...)
}
