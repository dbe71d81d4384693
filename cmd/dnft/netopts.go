package main

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/dnft/dnft"
)

// Docker's bridge network option keys that dnft understands.
const (
	optEnableICC       = "com.docker.network.bridge.enable_icc"
	optEnableMasq      = "com.docker.network.bridge.enable_ip_masquerade"
	optHostBindingIPv4 = "com.docker.network.bridge.host_binding_ipv4"
	optHostIPv4        = "com.docker.network.host_ipv4"
	optHostIPv6        = "com.docker.network.host_ipv6"
)

// createFlags are the flags of network create.
type createFlags struct {
	bridge   string
	subnets  []string
	internal bool
	opts     []string
}

// config turns the flags into a validated network configuration. ICC and
// masquerading default to true, as in Docker.
func (f createFlags) config(name string) (dnft.NetworkConfig, error) {
	if f.bridge == "" {
		return dnft.NetworkConfig{}, usageErrorf("network create: missing --bridge")
	}
	if len(f.subnets) == 0 {
		return dnft.NetworkConfig{}, usageErrorf("network create: missing --subnet")
	}
	cfg := dnft.NetworkConfig{
		Name:       name,
		Bridge:     f.bridge,
		Internal:   f.internal,
		ICC:        true,
		Masquerade: true,
	}
	if err := parseSubnets(&cfg, f.subnets); err != nil {
		return cfg, err
	}
	if err := applyOptions(&cfg, f.opts); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// parseSubnets sets the IPv4 and IPv6 subnets, in either order. Host bits
// are left for Validate to report.
func parseSubnets(cfg *dnft.NetworkConfig, subnets []string) error {
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return &dnft.FieldError{Field: "subnet", Value: s, Reason: netipReason(err, "netip.ParsePrefix", s)}
		}
		switch {
		case p.Addr().Is4() && cfg.Subnet4.IsValid():
			return &dnft.FieldError{Field: "subnet", Value: s,
				Reason: fmt.Sprintf("a second subnet must be IPv6 (already have IPv4 subnet %s)", cfg.Subnet4)}
		case p.Addr().Is4():
			cfg.Subnet4 = p
		case cfg.Subnet6.IsValid():
			return &dnft.FieldError{Field: "subnet", Value: s,
				Reason: fmt.Sprintf("only one IPv6 subnet is supported (already have %s)", cfg.Subnet6)}
		default:
			cfg.Subnet6 = p
		}
	}
	if !cfg.Subnet4.IsValid() {
		return &dnft.FieldError{Field: "subnet", Value: subnets[0], Reason: "an IPv4 subnet is required"}
	}
	return nil
}

// applyOptions applies -o KEY=VALUE options; a later value for a key wins,
// as in Docker.
func applyOptions(cfg *dnft.NetworkConfig, opts []string) error {
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return &dnft.FieldError{Field: "option", Value: o, Reason: "must be KEY=VALUE"}
		}
		var err error
		switch k {
		case optEnableICC:
			cfg.ICC, err = parseBoolOpt(k, v)
		case optEnableMasq:
			cfg.Masquerade, err = parseBoolOpt(k, v)
		case optHostBindingIPv4:
			cfg.HostBindingIPv4, err = parseAddrOpt(k, v)
		case optHostIPv4:
			cfg.HostIPv4, err = parseAddrOpt(k, v)
		case optHostIPv6:
			cfg.HostIPv6, err = parseAddrOpt(k, v)
		default:
			return inputErrorf("unknown network option %q (known: %s)", k, strings.Join(knownOptions(), ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func knownOptions() []string {
	k := []string{optEnableICC, optEnableMasq, optHostBindingIPv4, optHostIPv4, optHostIPv6}
	sort.Strings(k)
	return k
}

// parseBoolOpt parses a boolean option value like Docker (strconv.ParseBool).
func parseBoolOpt(key, val string) (bool, error) {
	b, err := strconv.ParseBool(val)
	if err != nil {
		return false, &dnft.FieldError{Field: key, Value: val, Reason: "must be a boolean (true or false)"}
	}
	return b, nil
}

// parseAddrOpt parses an address option value. Its family is checked by
// Validate, which knows which family each option needs.
func parseAddrOpt(key, val string) (netip.Addr, error) {
	a, err := netip.ParseAddr(val)
	if err != nil {
		return a, &dnft.FieldError{Field: key, Value: val, Reason: netipReason(err, "ParseAddr", val)}
	}
	if a.Zone() != "" {
		return a, &dnft.FieldError{Field: key, Value: val, Reason: "must not have a zone"}
	}
	return a, nil
}

// netipReason strips net/netip's `Func("input"): ` prefix, which would
// repeat the value the FieldError already names.
func netipReason(err error, fn, input string) string {
	return strings.TrimPrefix(err.Error(), fmt.Sprintf("%s(%q): ", fn, input))
}
