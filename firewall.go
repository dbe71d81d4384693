// Package dnft is an nftables-native firewall backend for container
// runtimes. It keeps the packet semantics of Docker's iptables rules
// (DOCKER, DOCKER-USER, DOCKER-ISOLATION, DOCKER-INGRESS, published ports)
// but programs them as dnft's own nftables tables, sets and maps, one
// atomic netlink batch per operation.
//
// A [Firewall] is bound to one network namespace. All state lives in the
// kernel (in comments of dnft's own set elements), so a new process sees
// and continues what an earlier one programmed:
//
//	fw, err := dnft.Open(ctx, "")            // "" = the caller's namespace
//	defer fw.Close()
//	err = fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true})
//	err = fw.CreateNetwork(ctx, dnft.NetworkConfig{
//		Name: "bridge", Bridge: "docker0", ICC: true, Masquerade: true,
//		Subnet4: netip.MustParsePrefix("172.17.0.0/16"),
//	})
//
// Be aware: an accept in dnft's tables does not override a drop in another
// table's base chain on the same hook (nftables evaluates every table).
package dnft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// DaemonConfig is the daemon-wide configuration (see [chains.DaemonConfig]).
type DaemonConfig = chains.DaemonConfig

// NetworkConfig describes a bridge network (see [chains.NetworkConfig]).
type NetworkConfig = chains.NetworkConfig

// Network is a network as read back from the kernel.
type Network = chains.Network

// FieldError is the error for bad input: it names the field and value.
type FieldError = chains.FieldError

// ErrNotInitialized is returned by operations before [Firewall.Init].
var ErrNotInitialized = errors.New("dnft is not initialized in this namespace (run init first)")

// ErrIPForwardOff is returned by [Firewall.Init] when IP forwarding is off
// in the namespace and [DaemonConfig.IPForward] does not allow turning it on.
var ErrIPForwardOff = errors.New("IP forwarding is off")

// Firewall programs Docker's firewall semantics into one network namespace.
// Its methods are safe for concurrent use.
type Firewall struct {
	mu      sync.Mutex
	conn    *nft.Conn
	lastSeq int64
}

// Open binds a Firewall to a network namespace: "" for the calling
// thread's, a name under /run/netns, or a path.
func Open(ctx context.Context, netns string) (*Firewall, error) {
	c, err := nft.Open(ctx, netns)
	if err != nil {
		return nil, err
	}
	return &Firewall{conn: c}, nil
}

// Close releases the netlink socket.
func (fw *Firewall) Close() error { return fw.conn.Close() }

// NetNS returns the namespace path the firewall is bound to.
func (fw *Firewall) NetNS() string { return fw.conn.NetNS() }

// seq returns a strictly increasing sequence number for ordering objects.
func (fw *Firewall) seq() int64 {
	s := time.Now().UnixNano()
	if s <= fw.lastSeq {
		s = fw.lastSeq + 1
	}
	fw.lastSeq = s
	return s
}

// state reads the daemon configuration and networks.
func (fw *Firewall) state(ctx context.Context) (chains.DaemonConfig, []chains.Network, error) {
	s, ok, err := fw.conn.ReadSet(ctx, nft.IPv4, chains.SetNetworks)
	if err != nil {
		return chains.DaemonConfig{}, nil, err
	}
	d, nets, initialized, err := chains.ReadState(s, ok)
	if err != nil {
		return d, nil, err
	}
	if !initialized {
		return d, nil, ErrNotInitialized
	}
	return d, nets, nil
}

// Daemon returns the configuration Init was given. ok is false before Init.
func (fw *Firewall) Daemon(ctx context.Context) (d DaemonConfig, ok bool, err error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, _, err = fw.state(ctx)
	if errors.Is(err, ErrNotInitialized) {
		return d, false, nil
	}
	return d, err == nil, err
}

// Networks lists the networks, oldest first.
func (fw *Firewall) Networks(ctx context.Context) ([]Network, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	_, nets, err := fw.state(ctx)
	return nets, err
}

// Init creates dnft's tables with the daemon-level chains. Calling it again
// with the same configuration changes nothing; a different configuration
// is refused while dnft is initialized (use Reset first). IP forwarding
// must be on in the namespace unless d.IPForward asks Init to turn it on.
func (fw *Firewall) Init(ctx context.Context, d DaemonConfig) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	cur, _, err := fw.state(ctx)
	switch {
	case err == nil:
		if err := sameDaemon(cur, d); err != nil {
			return err
		}
		return nil
	case !errors.Is(err, ErrNotInitialized):
		return fmt.Errorf("init: %w", err)
	}
	forward := []string{"net.ipv4.ip_forward"}
	if d.IPv6 {
		forward = append(forward, "net.ipv6.conf.all.forwarding")
	}
	var turnOn []string
	for _, k := range forward {
		v, _, err := fw.conn.Sysctl(k)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if v != "1" {
			if !d.IPForward {
				return fmt.Errorf("init: %w: %s is %s in namespace %s, so containers could not reach or be reached from outside; turn it on or pass --ip-forward to let dnft do it", ErrIPForwardOff, k, v, fw.conn.NetNS())
			}
			turnOn = append(turnOn, k)
		}
	}
	tx := &nft.Tx{}
	chains.Init(tx, d)
	portmap.Init(tx, d)
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for _, k := range turnOn {
		if err := fw.conn.SetSysctl(k, "1"); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	return nil
}

func sameDaemon(cur, want DaemonConfig) error {
	diff := func(field string, a, b bool) error {
		if a != b {
			return &FieldError{Field: field, Value: fmt.Sprint(b), Reason: fmt.Sprintf("dnft is already initialized with %s=%v; run reset first", field, a)}
		}
		return nil
	}
	return errors.Join(
		diff("userland-proxy", cur.UserlandProxy, want.UserlandProxy),
		diff("ipv6", cur.IPv6, want.IPv6),
		diff("allow-direct-routing", cur.AllowDirectRouting, want.AllowDirectRouting),
	)
}

// Reset removes everything dnft owns in the namespace (both tables,
// including DOCKER-USER). Nothing else is touched.
func (fw *Firewall) Reset(ctx context.Context) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	tx := &nft.Tx{}
	for _, f := range nft.Families {
		ok, err := fw.conn.TableExists(ctx, f)
		if err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		if ok {
			tx.DeleteTable(f)
		}
	}
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}
