package chains

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// stateVersion prefixes every record dnft keeps in the kernel.
const stateVersion = "dnft1"

// Network is a network as dnft knows it: its configuration and the order
// in which it was created.
type Network struct {
	NetworkConfig
	// Seq orders networks by creation (larger is newer).
	Seq int64
}

// EncodeDaemon turns the daemon configuration into the comment kept on the
// networks set.
func EncodeDaemon(d DaemonConfig) string {
	s := fmt.Sprintf("%s;proxy=%d;ipv6=%d;adr=%d", stateVersion, b2i(d.UserlandProxy), b2i(d.IPv6), b2i(d.AllowDirectRouting))
	if d.ForwardDrop4 || d.ForwardDrop6 {
		s += fmt.Sprintf(";fwdrop=%d%d", b2i(d.ForwardDrop4), b2i(d.ForwardDrop6))
	}
	if d.Layout != "" {
		s += ";layout=" + d.Layout
	}
	return s
}

// DecodeDaemon parses [EncodeDaemon]'s output.
func DecodeDaemon(s string) (DaemonConfig, error) {
	kv, err := parseRecord(s)
	if err != nil {
		return DaemonConfig{}, fmt.Errorf("daemon record: %w", err)
	}
	d := DaemonConfig{UserlandProxy: kv["proxy"] == "1", IPv6: kv["ipv6"] == "1", AllowDirectRouting: kv["adr"] == "1"}
	if v, ok := kv["fwdrop"]; ok {
		if len(v) != 2 || strings.Trim(v, "01") != "" {
			return DaemonConfig{}, fmt.Errorf("daemon record: bad fwdrop %q", v)
		}
		d.ForwardDrop4, d.ForwardDrop6 = v[0] == '1', v[1] == '1'
	}
	if v, ok := kv["layout"]; ok {
		if err := ValidLayout(v); err != nil || v == "" {
			return DaemonConfig{}, fmt.Errorf("daemon record: bad layout %q", v)
		}
		d.Layout = v
	}
	return d, nil
}

// EncodeNetwork turns a network into the comment of its networks element.
func EncodeNetwork(n Network) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s;n=%s;s4=%s", stateVersion, n.Name, n.Subnet4)
	if n.Subnet6.IsValid() {
		fmt.Fprintf(&b, ";s6=%s", n.Subnet6)
	}
	fmt.Fprintf(&b, ";f=%d%d%d", b2i(n.Internal), b2i(n.ICC), b2i(n.Masquerade))
	for _, a := range []struct {
		k string
		v netip.Addr
	}{{"h4", n.HostIPv4}, {"h6", n.HostIPv6}, {"b", n.HostBindingIPv4}} {
		if a.v.IsValid() {
			fmt.Fprintf(&b, ";%s=%s", a.k, a.v)
		}
	}
	fmt.Fprintf(&b, ";q=%s", strconv.FormatInt(n.Seq, 36))
	return b.String()
}

// DecodeNetwork parses [EncodeNetwork]'s output; bridge is the element key.
func DecodeNetwork(bridge, s string) (Network, error) {
	kv, err := parseRecord(s)
	if err != nil {
		return Network{}, fmt.Errorf("network record of %s: %w", bridge, err)
	}
	n := Network{NetworkConfig: NetworkConfig{Name: kv["n"], Bridge: bridge}}
	var errs []string
	parse := func(k string, into *netip.Prefix) {
		if v, ok := kv[k]; ok {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				errs = append(errs, err.Error())
			}
			*into = p
		}
	}
	parseA := func(k string, into *netip.Addr) {
		if v, ok := kv[k]; ok {
			a, err := netip.ParseAddr(v)
			if err != nil {
				errs = append(errs, err.Error())
			}
			*into = a
		}
	}
	parse("s4", &n.Subnet4)
	parse("s6", &n.Subnet6)
	parseA("h4", &n.HostIPv4)
	parseA("h6", &n.HostIPv6)
	parseA("b", &n.HostBindingIPv4)
	if f := kv["f"]; len(f) == 3 {
		n.Internal, n.ICC, n.Masquerade = f[0] == '1', f[1] == '1', f[2] == '1'
	} else {
		errs = append(errs, "bad flags "+f)
	}
	n.Seq, err = strconv.ParseInt(kv["q"], 36, 64)
	if err != nil {
		errs = append(errs, "bad sequence "+kv["q"])
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("network record of %s: %s", bridge, strings.Join(errs, "; "))
	}
	return n, nil
}

func parseRecord(s string) (map[string]string, error) {
	parts := strings.Split(s, ";")
	if parts[0] != stateVersion {
		return nil, fmt.Errorf("unknown record version %q", parts[0])
	}
	kv := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("bad field %q", p)
		}
		kv[k] = v
	}
	return kv, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
