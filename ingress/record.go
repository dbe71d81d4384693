package ingress

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dnft/dnft/chains"
)

// recordVersion prefixes every record dnft keeps in an element comment.
const recordVersion = "dnft1"

// portRecord is the comment of an ingress-dnat element.
type portRecord struct {
	gw   string
	refs int
	seq  int64
}

// String encodes the record as "dnft1;gw=G;n=COUNT;q=SEQ" (SEQ in base 36).
func (r portRecord) String() string {
	return fmt.Sprintf("%s;gw=%s;n=%d;q=%s", recordVersion, r.gw, r.refs, strconv.FormatInt(r.seq, 36))
}

// second is the comment of an ingress-ports element, the publication's
// second record: the ingress-dnat record with the target,
// "dnft1;gw=G;n=COUNT;q=SEQ;to=ADDR".
func (r portRecord) second(target netip.Addr) string {
	return r.String() + ";to=" + target.String()
}

// Gateway is an ingress gateway bridge's record: the number of ports
// published on it, and the sequence number of the publication that
// created its masquerade (iptables' -I POSTROUTING ... -o G -j
// MASQUERADE stays where that first publication put it until the last
// port goes; 0 when not recorded), and that of the publication that
// created the family's ingress chains and jumps (the same on every
// gateway of the family; they too stay until the family's last port
// goes).
type Gateway struct {
	Ports   int
	Created int64
	Ingress int64
}

// gatewayRecord is the comment of an ingress-gateways element:
// "dnft1;n=PORTS;c=CREATED;i=INGRESS" (sequences in base 36, left out
// when 0).
func gatewayRecord(g Gateway) string {
	s := fmt.Sprintf("%s;n=%d", recordVersion, g.Ports)
	if g.Created != 0 {
		s += ";c=" + strconv.FormatInt(g.Created, 36)
	}
	if g.Ingress != 0 {
		s += ";i=" + strconv.FormatInt(g.Ingress, 36)
	}
	return s
}

func parseFields(s string, keys ...string) (map[string]string, error) {
	parts := strings.Split(s, ";")
	if parts[0] != recordVersion || len(parts) != len(keys)+1 {
		return nil, fmt.Errorf("not a record of dnft: %q", chains.Clip(s))
	}
	kv := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if _, dup := kv[k]; !ok || dup || !slices.Contains(keys, k) {
			return nil, fmt.Errorf("bad field %q in record %q", chains.Clip(p), chains.Clip(s))
		}
		kv[k] = v
	}
	return kv, nil
}

func parseCount(kv map[string]string, s string) (int, error) {
	n, err := strconv.Atoi(kv["n"])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("bad count in record %q", chains.Clip(s))
	}
	return n, nil
}

// parsePortRecord parses [portRecord.String]'s output.
func parsePortRecord(s string) (portRecord, error) {
	kv, err := parseFields(s, "gw", "n", "q")
	if err != nil {
		return portRecord{}, err
	}
	return portFields(kv, s)
}

func portFields(kv map[string]string, s string) (portRecord, error) {
	r := portRecord{gw: kv["gw"]}
	if err := chains.ValidateIfName("bridge", r.gw); err != nil {
		return r, fmt.Errorf("bad gateway in record %q: %w", chains.Clip(s), err)
	}
	var err error
	if r.refs, err = parseCount(kv, s); err != nil {
		return r, err
	}
	if r.seq, err = strconv.ParseInt(kv["q"], 36, 64); err != nil || r.seq < 0 {
		return r, fmt.Errorf("bad sequence in record %q", chains.Clip(s))
	}
	return r, nil
}

// parseSecond parses [portRecord.second]'s output.
func parseSecond(s string) (portRecord, netip.Addr, error) {
	kv, err := parseFields(s, "gw", "n", "q", "to")
	if err != nil {
		return portRecord{}, netip.Addr{}, err
	}
	r, err := portFields(kv, s)
	if err != nil {
		return r, netip.Addr{}, err
	}
	t, err := netip.ParseAddr(kv["to"])
	if err != nil {
		return r, netip.Addr{}, fmt.Errorf("bad target in record %q", chains.Clip(s))
	}
	return r, t, nil
}

// parseGatewayRecord parses [gatewayRecord]'s output.
func parseGatewayRecord(s string) (Gateway, error) {
	keys := []string{"n"}
	for _, k := range []string{"c", "i"} {
		if strings.Contains(s, ";"+k+"=") {
			keys = append(keys, k)
		}
	}
	kv, err := parseFields(s, keys...)
	if err != nil {
		return Gateway{}, err
	}
	var g Gateway
	if g.Ports, err = parseCount(kv, s); err != nil {
		return g, err
	}
	for k, v := range map[string]*int64{"c": &g.Created, "i": &g.Ingress} {
		if c, ok := kv[k]; ok {
			if *v, err = strconv.ParseInt(c, 36, 64); err != nil || *v <= 0 {
				return g, fmt.Errorf("bad creation sequence in record %q", chains.Clip(s))
			}
		}
	}
	return g, nil
}
