// Package chains describes Docker's daemon-level and per-network firewall
// semantics (the DOCKER, DOCKER-USER and DOCKER-ISOLATION chains of the
// classic bridge driver) as a set of nftables objects for package nft to
// program. It never talks to the kernel itself.
package chains

import (
	"fmt"
	"net/netip"

	"strings"

	"github.com/dnft/dnft/nft"
)

// DaemonConfig holds the daemon-wide options that shape every network's rules.
type DaemonConfig struct {
	// UserlandProxy is Docker's --userland-proxy. When false ("hairpin"
	// mode) the nat OUTPUT jump also covers 127.0.0.0/8, published ports
	// are DNATed for packets from the container's own bridge, and local
	// sources leaving a bridge are masqueraded.
	UserlandProxy bool
	// IPv6 enables the ip6 table (Docker's --ip6tables).
	IPv6 bool
	// AllowDirectRouting is Docker's --allow-direct-routing. When false
	// (the default, "protected" mode) packets routed directly to a
	// container address from outside its bridge are dropped.
	AllowDirectRouting bool
	// IPForward asks Init to turn on IP forwarding in the namespace when it
	// is off, instead of failing. It is an instruction to Init, not part
	// of the recorded configuration.
	IPForward bool
	// IPForwardNoDrop is dockerd's --ip-forward-no-drop: when Init turns
	// forwarding on, the forward chain keeps accepting what no rule
	// decides instead of dropping it. Like IPForward it only instructs
	// Init; its effect is recorded in ForwardDrop4 and ForwardDrop6.
	IPForwardNoDrop bool
	// ForwardDrop4 and ForwardDrop6 record Init's decision for each
	// family: the filter-FORWARD base chain drops what no rule accepts
	// (iptables' -P FORWARD DROP), because Init itself turned forwarding
	// of that family on (and IPForwardNoDrop was not set), as dockerd
	// does. Init sets them and ignores the caller's values; they are part
	// of the recorded state, so that check, repair, save and restore keep
	// the decision.
	ForwardDrop4, ForwardDrop6 bool
	// Layout is the iptables layout the iptables view shows by default
	// (package compat): "" for CONTRACT.md's classic layout (one
	// DOCKER-ISOLATION chain), LayoutStages for Docker 17.06–27's
	// (DOCKER-ISOLATION-STAGE-1/2, the rule order dockerd 20.10 writes).
	// It changes no rule; it is recorded so that every reader of the
	// namespace shows the same layout (`dnft docker` sets it to the
	// followed daemon's).
	Layout string
	// RawTable4 and RawTable6 record that a rule of iptables' (ip6tables')
	// raw table has existed since init (protected mode's direct-access
	// drops come with the first non-internal network of the family):
	// iptables keeps the table, empty, once its last rule is gone, and
	// the iptables view shows it. They change no rule. See [RawUse].
	RawTable4, RawTable6 bool
}

// RawUse returns d with the raw tables that creating network n uses
// recorded (CONTRACT.md §2: protected mode, not internal, in each family
// of the network).
func RawUse(d DaemonConfig, n NetworkConfig) DaemonConfig {
	if d.AllowDirectRouting || n.Internal {
		return d
	}
	for _, f := range NetworkFamilies(d, n) {
		if f == nft.IPv6 {
			d.RawTable6 = true
		} else {
			d.RawTable4 = true
		}
	}
	return d
}

// RawTable reports whether family f's raw table has been used (see
// [DaemonConfig.RawTable4]).
func (d DaemonConfig) RawTable(f nft.Family) bool {
	if f == nft.IPv6 {
		return d.RawTable6
	}
	return d.RawTable4
}

// LayoutStages is [DaemonConfig.Layout] for Docker 17.06–27's layout.
const LayoutStages = "stages"

// ValidLayout checks a layout name: "" (classic) or LayoutStages.
func ValidLayout(l string) error {
	if l != "" && l != LayoutStages {
		return &FieldError{Field: "layout", Value: l, Reason: `must be "classic" (the default) or "stages" (Docker 17.06-27)`}
	}
	return nil
}

// ForwardDrop reports whether the forward chain of family f drops by
// policy (see [DaemonConfig.ForwardDrop4]).
func (d DaemonConfig) ForwardDrop(f nft.Family) bool {
	if f == nft.IPv6 {
		return d.ForwardDrop6
	}
	return d.ForwardDrop4
}

// NetworkConfig describes one bridge network. ICC and Masquerade have no
// implicit default: set them as Docker's defaults do (both true) unless the
// network options say otherwise.
type NetworkConfig struct {
	// Name is the network's name (1 to 64 characters of [A-Za-z0-9_.-]).
	Name string
	// Bridge is the bridge interface name (at most 15 bytes). The bridge
	// need not exist yet: rules match interface names.
	Bridge string
	// Subnet4 is the IPv4 subnet (required).
	Subnet4 netip.Prefix
	// Subnet6 is the optional IPv6 prefix; it is used only when the
	// daemon has IPv6 enabled.
	Subnet6 netip.Prefix
	// Internal networks have no NAT and no way in or out.
	Internal bool
	// ICC is com.docker.network.bridge.enable_icc.
	ICC bool
	// Masquerade is com.docker.network.bridge.enable_ip_masquerade.
	Masquerade bool
	// HostIPv4 is com.docker.network.host_ipv4: SNAT to this address
	// instead of MASQUERADE. Zero means masquerade.
	HostIPv4 netip.Addr
	// HostIPv6 is com.docker.network.host_ipv6.
	HostIPv6 netip.Addr
	// HostBindingIPv4 is com.docker.network.bridge.host_binding_ipv4, the
	// default host address for published ports. Zero means 0.0.0.0.
	HostBindingIPv4 netip.Addr
}

// FieldError reports a bad input value; it names the field and the value.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

// Error says "invalid FIELD "VALUE": REASON", with the value cut to a
// length fit for a message (see [Clip]).
func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, Clip(e.Value), e.Reason)
}

// validName reports whether a network name is 1-64 letters, digits,
// '_', '.' and '-', starting with a letter or digit (^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$,
// checked by hand: compiling a regexp at every start of the CLI costs more
// than the rest of its package initialisation).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// ValidName reports whether name is a valid network name.
func ValidName(name string) bool { return validName(name) }

// ValidateIfName checks an interface name the way the kernel does, and
// refuses the names that would not mean one interface to dnft's rules,
// the iptables view or the per-interface sysctls: "." and "..", "lo",
// "all" and "default" (directories of net/ipv4/conf), names with '*' (a
// wildcard to nft) and names ending in '+' (a wildcard to iptables).
func ValidateIfName(field, name string) error {
	switch {
	case name == "":
		return &FieldError{field, name, "must not be empty"}
	case len(name) > 15:
		return &FieldError{field, Clip(name), fmt.Sprintf("interface names are at most 15 bytes, this one has %d", len(name))}
	}
	for _, c := range []byte(name) {
		if c == '/' || c == ' ' || c == ':' || c < 0x21 || c > 0x7e || c == '"' {
			return &FieldError{field, name, "interface names may not contain '/', ':', '\"', spaces or control characters"}
		}
	}
	switch {
	case name == "." || name == "..":
		return &FieldError{field, name, "is not an interface name"}
	case name == "lo":
		return &FieldError{field, name, "is the loopback interface, not a bridge"}
	case name == "all" || name == "default":
		return &FieldError{field, name, "names the per-interface sysctl defaults (net/ipv4/conf/" + name + "), not an interface"}
	case strings.ContainsRune(name, '*'):
		return &FieldError{field, name, "'*' is a wildcard in nft interface matches"}
	case strings.HasSuffix(name, "+"):
		return &FieldError{field, name, "a trailing '+' is a wildcard in iptables interface matches"}
	}
	return nil
}

// maxValueLen bounds the values echoed in error messages.
const maxValueLen = 64

// Clip returns s cut to a length fit for an error message, marked with
// "..." when cut.
func Clip(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	return s[:maxValueLen] + "..."
}

// Reserved IPv4 ranges that cannot be a network's subnet.
var badSubnets4 = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "overlaps 0.0.0.0/8 (\"this network\")"},
	{netip.MustParsePrefix("127.0.0.0/8"), "overlaps the loopback range 127.0.0.0/8"},
	{netip.MustParsePrefix("224.0.0.0/4"), "overlaps the multicast range 224.0.0.0/4"},
	{netip.MustParsePrefix("240.0.0.0/4"), "overlaps the reserved range 240.0.0.0/4"},
}

// Reserved IPv6 ranges that cannot be a network's subnet.
var badSubnets6 = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("::/127"), "holds the unspecified or the loopback address"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "overlaps the IPv4-mapped range ::ffff:0:0/96"},
	{netip.MustParsePrefix("ff00::/8"), "overlaps the multicast range ff00::/8"},
}

// checkSubnet refuses a subnet that holds no container address or
// overlaps a reserved range.
func checkSubnet(p netip.Prefix) error {
	bad := func(reason string) error { return &FieldError{"subnet", p.String(), reason} }
	bits := 32
	ranges := badSubnets4
	if p.Addr().Is6() {
		bits, ranges = 128, badSubnets6
	}
	if p.Bits() > bits-2 {
		return bad(fmt.Sprintf("too small: a /%d has no address for a container besides its network and broadcast addresses", p.Bits()))
	}
	for _, r := range ranges {
		if r.p.Overlaps(p) {
			return bad(r.why)
		}
	}
	return nil
}

// Validate checks the configuration on its own (not against other networks).
func (c NetworkConfig) Validate() error {
	if !validName(c.Name) {
		return &FieldError{"name", Clip(c.Name), "must be 1-64 characters of letters, digits, '_', '.', '-', starting with a letter or digit"}
	}
	if err := ValidateIfName("bridge", c.Bridge); err != nil {
		return err
	}
	if !c.Subnet4.IsValid() {
		return &FieldError{"subnet", c.Subnet4.String(), "an IPv4 subnet is required"}
	}
	if !c.Subnet4.Addr().Is4() {
		return &FieldError{"subnet", c.Subnet4.String(), "the first subnet must be IPv4"}
	}
	if c.Subnet4 != c.Subnet4.Masked() {
		return &FieldError{"subnet", c.Subnet4.String(), fmt.Sprintf("has host bits set (did you mean %s?)", c.Subnet4.Masked())}
	}
	if err := checkSubnet(c.Subnet4); err != nil {
		return err
	}
	if c.Subnet6.IsValid() {
		if !c.Subnet6.Addr().Is6() || c.Subnet6.Addr().Is4In6() {
			return &FieldError{"subnet", c.Subnet6.String(), "the second subnet must be IPv6"}
		}
		if c.Subnet6 != c.Subnet6.Masked() {
			return &FieldError{"subnet", c.Subnet6.String(), fmt.Sprintf("has host bits set (did you mean %s?)", c.Subnet6.Masked())}
		}
		if err := checkSubnet(c.Subnet6); err != nil {
			return err
		}
	}
	if c.HostIPv4.IsValid() && !c.HostIPv4.Is4() {
		return &FieldError{"com.docker.network.host_ipv4", c.HostIPv4.String(), "must be an IPv4 address"}
	}
	if c.HostIPv6.IsValid() && (!c.HostIPv6.Is6() || c.HostIPv6.Is4In6()) {
		return &FieldError{"com.docker.network.host_ipv6", c.HostIPv6.String(), "must be an IPv6 address"}
	}
	if c.HostBindingIPv4.IsValid() && !c.HostBindingIPv4.Is4() {
		return &FieldError{"com.docker.network.bridge.host_binding_ipv4", c.HostBindingIPv4.String(), "must be an IPv4 address"}
	}
	return nil
}
