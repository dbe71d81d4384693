package docker

import (
	"os"
	"time"
)

// DefaultHost is the Engine API address used when neither
// [Options.Host] nor DOCKER_HOST says otherwise.
const DefaultHost = "unix:///var/run/docker.sock"

// Options configure a [Follower]. The daemon options mirror dockerd's
// flags of the same name: set them as dockerd was started (dockerd does
// not report them through the API).
type Options struct {
	// Host is the Engine API address, such as unix:///var/run/docker.sock.
	// Empty means DOCKER_HOST, else [DefaultHost].
	Host string
	// NetNS is the network namespace of the firewall: dockerd's. Empty
	// means the caller's (see [dnft.Open]).
	NetNS string

	// UserlandProxy is dockerd's --userland-proxy (default true).
	UserlandProxy bool
	// IPForward is dockerd's --ip-forward (default true): dockerd turns
	// IP forwarding on and, with its own iptables, sets the FORWARD
	// policy to drop; dnft's forward chain then drops what no rule
	// accepts. dnft leaves the sysctl to dockerd. (dockerd sets the drop
	// policy only when forwarding was off before it started: on a host
	// that forwarded already, use IPForwardNoDrop.)
	IPForward bool
	// IPForwardNoDrop is dockerd's --ip-forward-no-drop: keep the
	// FORWARD policy accept.
	IPForwardNoDrop bool
	// IPMasq is dockerd's --ip-masq (default true): masquerade of the
	// default bridge network. A daemon started with --iptables=false
	// reports masquerade off for that network whatever the flag, so it
	// is taken from here.
	IPMasq bool
	// IPv6 is dockerd's --ipv6 with --ip6tables: the ip6 table, IPv6
	// subnets and IPv6 bindings.
	IPv6 bool
	// AllowDirectRouting is Docker 28's --allow-direct-routing. Docker
	// 20.10–27 have no protection against packets routed straight to a
	// container's address: set it to behave like them.
	AllowDirectRouting bool

	// DNS programs, in the namespace of every container that uses
	// Docker's embedded DNS server (user-defined networks), the nat
	// rules that dockerd cannot install without an iptables binary
	// (default true).
	DNS bool

	// Logf receives one line per change and per problem; nil discards.
	Logf func(format string, args ...any)
	// MinBackoff and MaxBackoff bound the wait before reconnecting to
	// dockerd (defaults 100 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// Watch repairs drift of dnft's tables while following, as `dnft
	// watch` does (default true).
	Watch bool
	// WatchInterval is the period of the watch's checks made without
	// notifications (default: the watch's).
	WatchInterval time.Duration
}

// DefaultOptions returns dockerd's defaults: userland proxy, IP
// forwarding and masquerade on, IPv6 off, direct routing blocked (as
// Docker 28); DNS rules and drift repair on.
func DefaultOptions() Options {
	return Options{UserlandProxy: true, IPForward: true, IPMasq: true, DNS: true, Watch: true}
}

// host returns the Engine API address to use.
func (o Options) host() string {
	switch {
	case o.Host != "":
		return o.Host
	case os.Getenv("DOCKER_HOST") != "":
		return os.Getenv("DOCKER_HOST")
	}
	return DefaultHost
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

func (o Options) backoff() (time.Duration, time.Duration) {
	lo, hi := o.MinBackoff, o.MaxBackoff
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 5*time.Second)
	}
	return lo, hi
}
