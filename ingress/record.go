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

// gatewayRecord is the comment of an ingress-gateways element: the number
// of ports published on the gateway.
func gatewayRecord(ports int) string {
	return fmt.Sprintf("%s;n=%d", recordVersion, ports)
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
func parseGatewayRecord(s string) (int, error) {
	kv, err := parseFields(s, "n")
	if err != nil {
		return 0, err
	}
	return parseCount(kv, s)
}
