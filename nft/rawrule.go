package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// RawRule is a rule that dnft does not write itself (an operator's
// DOCKER-USER rule), kept in the kernel's own encoding so that it can be
// re-created exactly.
type RawRule struct {
	Family Family
	Chain  string
	// Handle is the kernel's handle of a rule read back; it is not used
	// when adding.
	Handle uint64
	// Exprs is the rule's NFTA_RULE_EXPRESSIONS payload (a list of
	// NFTA_LIST_ELEM attributes) in canonical form: as google/nftables
	// encodes it, with counter values zeroed (see [CanonicalExprs]).
	Exprs []byte
	// Comment is the rule's comment ("" for none).
	Comment string
	// Sets are the anonymous sets the rule looks up, in the order of its
	// lookups, which name them "__set0", "__set1", ... (see [AnonSet]).
	Sets []AnonSet
	// Packets and Bytes are the values of the rule's counter when it was
	// read back; they are not part of the rule and are not programmed.
	Packets, Bytes uint64
	// Insert and Position say where a rule is added: appended (neither),
	// added after the rule with handle Position, inserted at the top
	// (Insert), or inserted before the rule with handle Position.
	Insert   bool
	Position uint64
}

// RawRuleError says why a rule cannot be kept as a [RawRule].
type RawRuleError struct {
	Family Family
	Chain  string
	// Handle is the rule's handle in the kernel (0 for a rule from a file).
	Handle uint64
	// Expr is the 1-based position of the offending expression (0 when
	// the rule as a whole is the problem).
	Expr   int
	Reason string
}

// Error says which rule (family, chain, handle, expression) and why.
func (e *RawRuleError) Error() string {
	where := fmt.Sprintf("%s chain %s rule", e.Family, e.Chain)
	if e.Handle != 0 {
		where += fmt.Sprintf(" (handle %d)", e.Handle)
	}
	if e.Expr > 0 {
		where += fmt.Sprintf(" expression %d", e.Expr)
	}
	return where + ": " + e.Reason
}

// ReadRawRules reads the rules of one chain of dnft's table in their
// netlink encoding, in order. ok is false when the chain does not exist.
// A rule that google/nftables cannot decode and encode back to the same
// netlink attributes (an expression kind it does not know, which it would
// silently drop, or one it decodes lossily), or whose userdata holds more
// than a comment, is refused with a *RawRuleError rather than returned
// changed. The anonymous sets the rules look up are read with them.
func (c *Conn) ReadRawRules(ctx context.Context, f Family, chain string) (rules []RawRule, ok bool, err error) {
	read, ok, err := c.ReadChainRules(ctx, f, chain)
	if err != nil || !ok {
		return nil, ok, err
	}
	for _, r := range read {
		if r.Err != nil {
			return nil, true, r.Err
		}
		rules = append(rules, r.RawRule)
	}
	return rules, true, nil
}

// ChainRule is one rule as [Conn.ReadChainRules] read it: the raw rule,
// or, for a rule that cannot be kept as one, Err (a *RawRuleError) with
// only Handle, Comment and the counter values of RawRule set.
type ChainRule struct {
	RawRule
	Err error
}

// ReadChainRules reads the rules of one chain of dnft's table like
// [Conn.ReadRawRules], but a rule that cannot be kept as a raw rule is
// returned with its error instead of failing the read: views list every
// rule. ok is false when the chain does not exist.
func (c *Conn) ReadChainRules(ctx context.Context, f Family, chain string) (rules []ChainRule, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, TableName)
	ae.String(unix.NFTA_RULE_CHAIN, chain)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, false, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{byte(f), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return nil, false, errors.New("nft: connection closed")
	}
	// A dump of a missing table or chain is empty rather than an error:
	// ask for the chain first.
	if ok, err := c.chainExists(f, chain); err != nil || !ok {
		return nil, false, err
	}
	msgs, err := c.raw.execute(req)
	if err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOENT) {
			return nil, false, nil
		}
		return nil, false, errors.Join(fmt.Errorf("read rules of %s in %s: %w", chain, c.nsPath, err), c.rawFailed())
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		r, err := decodeRawRule(f, m.Data[4:], c.anonSet)
		var re *RawRuleError
		switch {
		case errors.As(err, &re):
			if r.Chain != chain {
				continue
			}
			rules = append(rules, ChainRule{RawRule: RawRule{Family: f, Chain: r.Chain, Handle: r.Handle,
				Comment: r.Comment, Packets: r.Packets, Bytes: r.Bytes}, Err: err})
			continue
		case err != nil:
			return nil, true, fmt.Errorf("%s chain %s: %w", f, chain, err)
		}
		if r.Chain != chain {
			continue // some kernels dump every chain (google/nftables#114)
		}
		rules = append(rules, ChainRule{RawRule: r})
	}
	return rules, true, nil
}

// chainExists asks the kernel for one chain of dnft's table.
func (c *Conn) chainExists(f Family, chain string) (bool, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_CHAIN_TABLE, TableName)
	ae.String(unix.NFTA_CHAIN_NAME, chain)
	attrs, err := ae.Encode()
	if err != nil {
		return false, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETCHAIN),
			Flags: netlink.Request,
		},
		Data: append([]byte{byte(f), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	if _, err := c.raw.execute(req); err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOENT) {
			return false, nil
		}
		return false, errors.Join(fmt.Errorf("read chain %s in %s: %w", chain, c.nsPath, err), c.rawFailed())
	}
	return true, nil
}

// decodeRawRule decodes one NEWRULE message body and canonicalizes it;
// anon reads the anonymous sets its lookups name (nil: refuse them). On
// a *RawRuleError the chain, handle, comment and counter are still set.
func decodeRawRule(f Family, b []byte, anon func(Family, string) (AnonSet, error)) (RawRule, error) {
	r := RawRule{Family: f}
	var raw, ud []byte
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	ad.ByteOrder = binary.BigEndian
	compat := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_CHAIN:
			r.Chain = ad.String()
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_EXPRESSIONS:
			raw = ad.Bytes()
		case unix.NFTA_RULE_USERDATA:
			ud = ad.Bytes()
		case unix.NFTA_RULE_COMPAT:
			compat = true
		}
	}
	if err := ad.Err(); err != nil {
		return r, err
	}
	r.Packets, r.Bytes = rawCounter(raw)
	comment, cerr := ruleComment(ud)
	r.Comment = comment
	switch {
	case compat:
		return r, &RawRuleError{Family: f, Chain: r.Chain, Handle: r.Handle, Reason: "has iptables compat data (NFTA_RULE_COMPAT), which dnft cannot reproduce"}
	case cerr != nil:
		if s, ok := userdata.GetString(ud, userdata.TypeComment); ok {
			r.Comment = s
		}
		return r, &RawRuleError{Family: f, Chain: r.Chain, Handle: r.Handle, Reason: cerr.Error()}
	}
	exprs, err := decodeExprs(f, raw, anon != nil)
	if err == nil && anon != nil {
		r.Sets, err = readAnonSets(f, exprs, anon)
	}
	if err == nil {
		r.Exprs, err = encodeExprs(f, exprs)
	}
	if err != nil {
		var re *RawRuleError
		if errors.As(err, &re) {
			re.Chain, re.Handle = r.Chain, r.Handle
		}
		return r, err
	}
	return r, nil
}

// rawCounter returns the values of the first counter expression of an
// expression list (zero when it has none or cannot be read).
func rawCounter(raw []byte) (packets, bytes uint64) {
	elems, err := parseAttrs(raw)
	if err != nil {
		return 0, 0
	}
	for _, el := range elems {
		name, data, err := exprNameData(el.data)
		if err != nil || name != "counter" {
			continue
		}
		var c expr.Counter
		if expr.Unmarshal(0, data, &c) == nil {
			return c.Packets, c.Bytes
		}
	}
	return 0, 0
}

// readAnonSets reads the anonymous sets that exprs look up, in order, and
// renames the lookups to the canonical "__set<i>" (with no set ID).
func readAnonSets(f Family, exprs []expr.Any, anon func(Family, string) (AnonSet, error)) ([]AnonSet, error) {
	var sets []AnonSet
	for i, e := range exprs {
		l, ok := e.(*expr.Lookup)
		if !ok || anonymousSet(l) == "" {
			continue
		}
		s, err := anon(f, l.SetName)
		if err != nil {
			return nil, rawErr(f, i+1, "anonymous set %s: %v", l.SetName, err)
		}
		sets = append(sets, s)
		l.SetName, l.SetID = anonName(len(sets)-1), 0
	}
	return sets, nil
}

// CanonicalRule checks a raw rule given whole (from a file): its
// expressions as [CanonicalExprs] does, its lookups of anonymous sets,
// which must be "__set0", "__set1", ... in order and match r.Sets, and
// its sets (elements sorted). It returns the rule in canonical form.
func CanonicalRule(r RawRule) (RawRule, error) {
	exprs, err := decodeExprs(r.Family, r.Exprs, true)
	if err != nil {
		return r, err
	}
	n := 0
	for i, e := range exprs {
		l, ok := e.(*expr.Lookup)
		if !ok || anonymousSet(l) == "" {
			continue
		}
		if l.SetName != anonName(n) || n >= len(r.Sets) {
			return r, rawErr(r.Family, i+1, "looks up %s: anonymous sets must be named __set0, __set1, ... in order, one per entry of sets", l.SetName)
		}
		l.SetID = 0
		n++
	}
	if n != len(r.Sets) {
		return r, rawErr(r.Family, 0, "has %d anonymous sets but looks up %d", len(r.Sets), n)
	}
	out := r
	out.Sets = nil
	for i, s := range r.Sets {
		if s.KeyLen == 0 || s.KeyLen > 64 || len(s.Elements) == 0 {
			return r, rawErr(r.Family, 0, "anonymous set %d: key length %d, %d elements", i, s.KeyLen, len(s.Elements))
		}
		if _, ok := datatypeOf(s.KeyType, s.KeyLen); !ok {
			return r, rawErr(r.Family, 0, "anonymous set %d: unsupported key type %d", i, s.KeyType)
		}
		c := AnonSet{KeyType: s.KeyType, KeyLen: s.KeyLen, Interval: s.Interval}
		for _, e := range s.Elements {
			if len(e.Key) != int(s.KeyLen) || e.End && !s.Interval {
				return r, rawErr(r.Family, 0, "anonymous set %d: bad element %x", i, e.Key)
			}
			c.Elements = append(c.Elements, AnonElement{Key: slices.Clone(e.Key), End: e.End})
		}
		sortElements(c.Elements)
		out.Sets = append(out.Sets, c)
	}
	out.Exprs, err = encodeExprs(r.Family, exprs)
	return out, err
}

// datatypeOf returns the google/nftables datatype of an anonymous set's
// key: the types operators' rules use.
func datatypeOf(magic, l uint32) (nftables.SetDatatype, bool) {
	for _, dt := range []nftables.SetDatatype{nftables.TypeInetService, nftables.TypeIPAddr, nftables.TypeIP6Addr,
		nftables.TypeInetProto, nftables.TypeIFName, nftables.TypeMark, nftables.TypeICMPType, nftables.TypeICMP6Type} {
		if dt.GetNFTMagic() == magic && dt.Bytes == l {
			return dt, true
		}
	}
	return nftables.SetDatatype{}, false
}

// ruleComment returns the comment of rule userdata, refusing anything
// else that it holds (it would be lost).
func ruleComment(ud []byte) (string, error) {
	if len(ud) == 0 {
		return "", nil
	}
	s, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok || len(ud) != len(s)+3 && len(ud) != len(s)+2 {
		return "", fmt.Errorf("rule userdata holds more than a comment (%d bytes), which dnft cannot reproduce", len(ud))
	}
	return s, nil
}

// CanonicalExprs decodes an NFTA_RULE_EXPRESSIONS payload with
// google/nftables, encodes it again with counter values zeroed, and
// returns the result. It refuses, with a *RawRuleError, a payload whose
// decoding would change the rule: an expression kind google/nftables does
// not know (it drops those silently), or one whose encoding back lacks or
// changes an attribute the payload has. Attribute order, nesting flags
// and counter values are not differences. Canonical payloads are their
// own canonical form.
func CanonicalExprs(f Family, raw []byte) ([]byte, error) {
	exprs, err := decodeExprs(f, raw, false)
	if err != nil {
		return nil, err
	}
	return encodeExprs(f, exprs)
}

// rawExprs decodes a canonical payload into expressions to add; its
// anonymous sets are the rule's.
func rawExprs(f Family, raw []byte) ([]expr.Any, error) { return decodeExprs(f, raw, true) }

func rawErr(f Family, i int, format string, args ...any) error {
	return &RawRuleError{Family: f, Expr: i, Reason: fmt.Sprintf(format, args...)}
}

// decodeExprs decodes and checks every expression of a payload; anon
// allows lookups of anonymous sets (whose elements the caller keeps).
func decodeExprs(f Family, raw []byte, anon bool) ([]expr.Any, error) {
	elems, err := parseAttrs(raw)
	if err != nil {
		return nil, rawErr(f, 0, "bad expression list: %v", err)
	}
	if len(elems) == 0 {
		return nil, rawErr(f, 0, "has no expressions")
	}
	out := make([]expr.Any, 0, len(elems))
	for i, el := range elems {
		n := i + 1
		if el.typ != unix.NFTA_LIST_ELEM {
			return nil, rawErr(f, n, "unexpected attribute %d in the expression list", el.typ)
		}
		name, data, err := exprNameData(el.data)
		if err != nil {
			return nil, rawErr(f, n, "%v", err)
		}
		if name == "ct" {
			if data, err = widenCtDirection(data); err != nil {
				return nil, rawErr(f, n, "%v", err)
			}
			if el.data, err = exprBytes(name, data); err != nil {
				return nil, rawErr(f, n, "%v", err)
			}
		}
		e := newExpr(name, data)
		if e == nil {
			return nil, rawErr(f, n, "expression kind %q is not supported by google/nftables v0.3.0, which would drop it: refusing to keep a changed rule", name)
		}
		if data != nil {
			if err := expr.Unmarshal(byte(f), data, e); err != nil {
				return nil, rawErr(f, n, "decode %q: %v", name, err)
			}
		}
		if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
			v := &expr.Verdict{}
			if err := expr.Unmarshal(byte(f), data, v); err != nil {
				return nil, rawErr(f, n, "decode verdict: %v", err)
			}
			e = v
		}
		if set := anonymousSet(e); set != "" && !anon {
			return nil, rawErr(f, n, "looks up the anonymous set %s (an inline { ... } list), whose elements dnft does not save: use single values or several rules", set)
		}
		if c, ok := e.(*expr.Counter); ok {
			c.Bytes, c.Packets = 0, 0
		}
		back, err := expr.Marshal(byte(f), e)
		if err != nil {
			return nil, rawErr(f, n, "encode %q: %v", name, err)
		}
		if why := sameExpr(name, el.data, back); why != "" {
			return nil, rawErr(f, n, "google/nftables v0.3.0 decodes expression %q lossily (%s): refusing to keep a changed rule", name, why)
		}
		out = append(out, e)
	}
	return out, nil
}

// encodeExprs encodes expressions as an NFTA_RULE_EXPRESSIONS payload.
func encodeExprs(f Family, exprs []expr.Any) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	for i, e := range exprs {
		b, err := expr.Marshal(byte(f), e)
		if err != nil {
			return nil, rawErr(f, i+1, "encode: %v", err)
		}
		ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, b)
	}
	return ae.Encode()
}

// exprNameData splits one expression into its name and data payload.
func exprNameData(b []byte) (name string, data []byte, err error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return "", nil, fmt.Errorf("bad expression: %v", err)
	}
	for _, a := range attrs {
		switch a.typ {
		case unix.NFTA_EXPR_NAME:
			name = cString(a.data)
		case unix.NFTA_EXPR_DATA:
			data = a.data
		default:
			return "", nil, fmt.Errorf("unexpected expression attribute %d", a.typ)
		}
	}
	if name == "" {
		return "", nil, errors.New("expression without a name")
	}
	return name, data, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// newExpr returns an empty expression of the named kind, or nil for a
// kind google/nftables v0.3.0 cannot decode (its expr.exprFromName, which
// is not exported).
func newExpr(name string, data []byte) expr.Any {
	switch name {
	case "notrack":
		if data == nil {
			return &expr.Notrack{}
		}
	case "ct":
		return &expr.Ct{}
	case "range":
		return &expr.Range{}
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "counter":
		return &expr.Counter{}
	case "objref":
		return &expr.Objref{}
	case "payload":
		return &expr.Payload{}
	case "lookup":
		return &expr.Lookup{}
	case "immediate":
		return &expr.Immediate{}
	case "bitwise":
		return &expr.Bitwise{}
	case "redir":
		return &expr.Redir{}
	case "nat":
		return &expr.NAT{}
	case "limit":
		return &expr.Limit{}
	case "quota":
		return &expr.Quota{}
	case "dynset":
		return &expr.Dynset{}
	case "log":
		return &expr.Log{}
	case "exthdr":
		return &expr.Exthdr{}
	case "connlimit":
		return &expr.Connlimit{}
	case "queue":
		return &expr.Queue{}
	case "flow_offload":
		return &expr.FlowOffload{}
	case "reject":
		return &expr.Reject{}
	case "masq":
		return &expr.Masq{}
	case "hash":
		return &expr.Hash{}
	case "synproxy":
		return &expr.SynProxy{}
	case "fib":
		return &expr.Fib{}
	case "numgen":
		return &expr.Numgen{}
	}
	// match and target (xt) are left out on purpose: dnft's tables hold no
	// iptables-compat expressions (CONTRACT.md §3).
	return nil
}

// addRawRules queues raw rules on a library connection, after the rest
// of a batch, each with its anonymous sets.
func addRawRules(nc *nftables.Conn, rules []RawRule) error {
	for i, r := range rules {
		exprs, err := rawExprs(r.Family, r.Exprs)
		if err != nil {
			return fmt.Errorf("raw rule %d: %w", i+1, err)
		}
		t := table(r.Family)
		if err := addAnonSets(nc, t, r, exprs); err != nil {
			return fmt.Errorf("raw rule %d: %w", i+1, err)
		}
		lr := &nftables.Rule{Table: t, Chain: &nftables.Chain{Name: r.Chain, Table: t}, Exprs: exprs}
		lr.Position = r.Position
		if r.Comment != "" {
			if len(r.Comment) > maxCommentLen {
				return fmt.Errorf("raw rule %d: comment of %d bytes exceeds %d", i+1, len(r.Comment), maxCommentLen)
			}
			lr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
		}
		if r.Insert {
			nc.InsertRule(lr)
		} else {
			nc.AddRule(lr)
		}
	}
	return nil
}

// addAnonSets creates the anonymous sets of a raw rule and points its
// lookups ("__set<i>") at them.
func addAnonSets(nc *nftables.Conn, t *nftables.Table, r RawRule, exprs []expr.Any) error {
	var made []*nftables.Set
	for i, s := range r.Sets {
		dt, ok := datatypeOf(s.KeyType, s.KeyLen)
		if !ok {
			return fmt.Errorf("anonymous set %d: unsupported key type %d", i, s.KeyType)
		}
		ls := &nftables.Set{Table: t, Anonymous: true, Constant: true, Interval: s.Interval, KeyType: dt}
		if dt.Name == nftables.TypeIFName.Name {
			ls.KeyByteOrder = binaryutil.NativeEndian
		}
		var elems []nftables.SetElement
		for _, e := range s.Elements {
			elems = append(elems, nftables.SetElement{Key: slices.Clone(e.Key), IntervalEnd: e.End})
		}
		if err := nc.AddSet(ls, elems); err != nil {
			return fmt.Errorf("anonymous set %d: %w", i, err)
		}
		made = append(made, ls)
	}
	for _, e := range exprs {
		l, ok := e.(*expr.Lookup)
		if !ok || anonymousSet(l) == "" {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(l.SetName, "__set%d", &i); err != nil || i < 0 || i >= len(made) {
			return fmt.Errorf("looks up %s, which the rule does not define", l.SetName)
		}
		l.SetName, l.SetID = made[i].Name, made[i].ID
	}
	return nil
}

// RawRefs are the objects of its table that a raw rule refers to.
type RawRefs struct {
	// Chains are the targets of jumps and gotos.
	Chains []string
	// Sets are the sets and maps it looks up or updates.
	Sets []string
	// Objects are the stateful objects (named counters, quotas, ...) it
	// refers to.
	Objects []string
}

// References returns the chains, sets and objects a raw rule refers to:
// re-creating the rule needs them.
func (r RawRule) References() (RawRefs, error) {
	exprs, err := rawExprs(r.Family, r.Exprs)
	if err != nil {
		return RawRefs{}, err
	}
	var out RawRefs
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Verdict:
			if e.Kind == expr.VerdictJump || e.Kind == expr.VerdictGoto {
				out.Chains = append(out.Chains, e.Chain)
			}
		case *expr.Lookup:
			if anonymousSet(e) == "" {
				out.Sets = append(out.Sets, e.SetName)
			}
		case *expr.Dynset:
			out.Sets = append(out.Sets, e.SetName)
		case *expr.Objref:
			out.Objects = append(out.Objects, e.Name)
		}
	}
	return out, nil
}

// anonymousSet returns the name of the anonymous set an expression uses.
func anonymousSet(e expr.Any) string {
	var name string
	switch e := e.(type) {
	case *expr.Lookup:
		name = e.SetName
	case *expr.Dynset:
		name = e.SetName
	}
	if strings.HasPrefix(name, "__set") || strings.HasPrefix(name, "__map") {
		return name
	}
	return ""
}
