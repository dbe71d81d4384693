package ingress

import (
	"fmt"
	"strconv"
	"strings"
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

// gatewayRecord is the comment of an ingress-gateways element: the number
// of ports published on the gateway.
func gatewayRecord(ports int) string {
	return fmt.Sprintf("%s;n=%d", recordVersion, ports)
}

func parseFields(s string) (map[string]string, error) {
	parts := strings.Split(s, ";")
	if parts[0] != recordVersion {
		return nil, fmt.Errorf("unknown record %q", s)
	}
	kv := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("bad field %q in record %q", p, s)
		}
		kv[k] = v
	}
	return kv, nil
}

func parseCount(kv map[string]string, s string) (int, error) {
	n, err := strconv.Atoi(kv["n"])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("bad count in record %q", s)
	}
	return n, nil
}

// parsePortRecord parses [portRecord.String]'s output.
func parsePortRecord(s string) (portRecord, error) {
	kv, err := parseFields(s)
	if err != nil {
		return portRecord{}, err
	}
	r := portRecord{gw: kv["gw"]}
	if r.gw == "" {
		return r, fmt.Errorf("no gateway in record %q", s)
	}
	if r.refs, err = parseCount(kv, s); err != nil {
		return r, err
	}
	if r.seq, err = strconv.ParseInt(kv["q"], 36, 64); err != nil {
		return r, fmt.Errorf("bad sequence in record %q", s)
	}
	return r, nil
}

// parseGatewayRecord parses [gatewayRecord]'s output.
func parseGatewayRecord(s string) (int, error) {
	kv, err := parseFields(s)
	if err != nil {
		return 0, err
	}
	return parseCount(kv, s)
}
