package dnft

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// Finding is one difference between what dnft's tables hold and what its
// state says they should hold (see [Firewall.Check]).
type Finding struct {
	// Family is the table's family.
	Family nft.Family
	// Object names what differs: "table dnft", "chain DOCKER__br0",
	// `chain filter-FORWARD rule "DOCKER-USER"`, "set published element
	// 172.17.0.2 . tcp . 80", or "state".
	Object string
	// Problem says how: "missing", "not dnft's", "changed (...)", ...
	Problem string
}

// String formats the finding as one line: "ip chain DOCKER__br0: missing".
func (f Finding) String() string {
	return fmt.Sprintf("%s %s: %s", f.Family, f.Object, f.Problem)
}

// Check compares dnft's tables in the kernel with what they should
// hold, and returns every difference: missing, foreign or changed
// chains (base chains by type, hook, priority and policy), rules (by
// what they do, their expressions, then by comment and order) and set
// elements (by key, then by value: data, verdict and record), missing
// tables, and records that are not valid or contradict each other.
// DOCKER-USER's rules are the operator's and are never drift; the chain
// and its jump are. It also compares the kernel settings dnft keeps on the
// bridges that exist and their ports (route_localnet, bridge netfilter,
// hairpin mode: see [chains.LinkSettings]); a missing bridge is no drift.
//
// What the tables should hold is saved, when it is not nil (a state
// saved with [Firewall.Save]); else what dnft's records say (see
// [Firewall.Repair]). When there are no records to tell (a deleted
// table, a flushed ruleset), the result says that the state is unknown.
// A damaged kernel is never an error: it is what Check reports. Check
// takes the namespace lock shared and changes nothing.
func (fw *Firewall) Check(ctx context.Context, saved *State) ([]Finding, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.lk.lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer unlock()
	in, err := fw.inspect(ctx, saved)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	findings := in.findings
	if in.unknown != nil {
		if findTable(in.have, nft.IPv4) == nil {
			findings = append(findings, Finding{Family: nft.IPv4, Object: "table " + nft.TableName, Problem: "missing (dnft's table is gone: deleted by someone else)"})
		}
		findings = append(findings, unknownFinding(in.unknown))
	}
	return findings, nil
}

// Repair makes dnft's tables hold what [Firewall.Check] compares them
// with, in ONE batch, when they do not: it deletes dnft's tables and
// creates everything again (rule and element counters start from zero),
// with the DOCKER-USER rules the kernel holds, or, where that chain is
// gone or was flushed with dnft's own, those of saved. It returns what
// was wrong; nothing is sent when nothing was.
//
// The truth it repairs toward is saved when it is not nil, else dnft's
// records. Every record is kept twice in the kernel (see [State]), so
// that after any one edit of dnft's tables — a deleted, flushed, forged
// or changed element, set, rule or chain — the records still tell what
// every binding, network and ingress port is: one whose record survives
// anywhere is restored, never deleted, and an element that no record
// owns is removed, never completed. When the records cannot tell (a
// deleted table, two copies that contradict each other) Repair fails
// with ErrStateUnknown and changes nothing: pass a saved state.
func (fw *Firewall) Repair(ctx context.Context, saved *State) ([]Finding, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	defer unlock()
	var findings []Finding
	err = fw.retry(func() error {
		var err error
		findings, _, _, err = fw.repair(ctx, saved)
		return err
	})
	if err != nil {
		return findings, fmt.Errorf("repair: %w", err)
	}
	return findings, nil
}

// repair is Repair with the lock held; it also returns the state the
// tables hold afterwards and the generation of its batch (0 if none).
func (fw *Firewall) repair(ctx context.Context, saved *State) ([]Finding, State, uint32, error) {
	in, err := fw.inspect(ctx, saved)
	switch {
	case err != nil:
		return nil, State{}, 0, err
	case in.unknown != nil:
		return in.findings, State{}, 0, fmt.Errorf("%w: pass a state saved with dnft save to repair from", in.unknown)
	case len(in.findings) == 0:
		return nil, in.p.state, 0, nil
	case onlyLinkFindings(in.findings):
		// Settings of bridges and ports: the tables are fine.
		_, err := fw.applyLinks(ctx, stateLinks(in.p.state))
		return in.findings, in.p.state, 0, err
	case in.p.userBad != nil:
		return in.findings, in.p.state, 0, fmt.Errorf("repairing would lose a %s rule that dnft cannot re-create (%w): change that rule, or repair by hand", chains.DockerUser, in.p.userBad)
	}
	p := in.p
	if saved != nil {
		p.state.DockerUser = flushedUser(p.state.DockerUser, saved.DockerUser, in.findings)
	}
	_, gen, err := fw.rebuild(ctx, p, families(in.have), in.gen)
	return in.findings, p.state, gen, err
}

// inspection is one comparison of dnft's tables with what they should
// hold.
type inspection struct {
	// have is the snapshot of dnft's tables, at generation gen, without
	// the elements of its sets (packed for the comparison, then dropped).
	have []nft.TableState
	gen  uint32
	// p is what they should hold, built.
	p *programmed
	// findings are the differences, and the records that are bad.
	findings []Finding
	// unknown is set, wrapping ErrStateUnknown, when what they should
	// hold cannot be told; p is then the best guess.
	unknown error
}

// inspect reads one snapshot of dnft's tables and compares it with what
// they should hold: saved when it is not nil, else the records of the
// snapshot (see [recordsOf]). DOCKER-USER gets, per family, the rules
// the kernel holds when the chain exists, else saved's.
func (fw *Firewall) inspect(ctx context.Context, saved *State) (inspection, error) {
	var in inspection
	var err error
	if in.have, in.gen, err = fw.readSnapshot(ctx); err != nil {
		return in, err
	}
	if saved != nil {
		s, err := saved.validate(ctx)
		if err != nil {
			return in, fmt.Errorf("saved state: %w", err)
		}
		saved = &s
	}
	var want State
	if saved != nil {
		want = cloneState(*saved)
	} else {
		rt := recordsOf(in.have)
		want, in.findings, in.unknown = rt.state, rt.findings, rt.unknown
		if len(in.have) == 0 {
			// Never initialized or reset (a valid, empty state), or
			// deleted by someone else: the commit journal tells which.
			if in.unknown = uninitialized(fw.lk.path, fw.lk.cookie); in.unknown != nil && !errors.Is(in.unknown, ErrStateUnknown) {
				return in, in.unknown
			}
		}
	}
	var user userChains
	if want.Daemon != nil {
		var kernel []UserRule
		if kernel, user, err = fw.readUser(ctx, want.Daemon.Families()); err != nil {
			return in, err
		}
		if saved != nil {
			want.DockerUser = mergeUser(kernel, user, saved.DockerUser)
		} else {
			want.DockerUser = kernel
		}
	}
	// The kernel's set elements, packed before what they should hold is
	// built (at 65,000 bindings, 23 MB less at check's peak): in.have
	// keeps its tables, chains and sets, without elements.
	kernel := packTables(in.have, true)
	if in.p, err = fw.program(ctx, want); err != nil {
		return in, err
	}
	// From here on, in.p.state stands for want (the same daemon), so that
	// want's bindings are not kept through the build next to their copy
	// (8 MB at 65,000 bindings).
	d := in.p.state.Daemon
	// The operator's rules are the kernel's where DOCKER-USER exists; if
	// one of those cannot be reproduced, a rebuild would lose it.
	if d != nil {
		in.p.userBad = user.bad(d.Families()...)
	}
	if in.unknown != nil && d == nil {
		// Nothing to compare with: the records are gone.
		return in, nil
	}
	in.findings = append(in.findings, comparePacked(in.p.objs, in.have, kernel, in.p.specs)...)
	links, err := fw.linkDrift(ctx, in.p.state)
	if err != nil {
		return in, err
	}
	in.findings = append(in.findings, links...)
	return in, nil
}

// flushedUser gives back saved's DOCKER-USER rules to a family whose
// DOCKER-USER is empty while dnft's own rules are missing too: its
// chains were flushed (`nft flush table`), the operator's with them.
func flushedUser(kernel, saved []UserRule, findings []Finding) []UserRule {
	out := []UserRule{}
	for _, f := range nft.Families {
		lost := slices.ContainsFunc(findings, func(x Finding) bool {
			return x.Family == f && x.Problem == "missing" && strings.Contains(x.Object, " rule ")
		})
		has := func(r UserRule) bool { return r.Family == f }
		from := kernel
		if lost && !slices.ContainsFunc(kernel, has) {
			from = saved
		}
		for _, r := range from {
			if has(r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// mergeUser takes the kernel's DOCKER-USER rules for the families whose
// chain exists (user) and saved's for the others.
func mergeUser(kernel []UserRule, user userChains, saved []UserRule) []UserRule {
	out := []UserRule{}
	for _, f := range nft.Families {
		from := saved
		if user.exists(f) {
			from = kernel
		}
		for _, r := range from {
			if r.Family == f {
				out = append(out, r)
			}
		}
	}
	return out
}

// unknownFinding says that the state is unknown, and why.
func unknownFinding(why error) Finding {
	msg := strings.TrimPrefix(why.Error(), ErrStateUnknown.Error()+": ")
	return Finding{Family: nft.IPv4, Object: "state", Problem: "unknown (" + msg + "): pass a state saved with dnft save (--state FILE) to check against"}
}

// compareTables lists the differences between the tables dnft's state
// programs (want) and those in the kernel (have).
func compareTables(want, have []nft.TableState, specs map[nft.Family]map[string]nft.Set) []Finding {
	return comparePacked(want, have, packTables(have, false), specs)
}

// comparePacked is [compareTables] with the elements of have's sets
// packed (see [packTables]).
func comparePacked(want, have []nft.TableState, packed map[nft.Family]map[string]*packedSet, specs map[nft.Family]map[string]nft.Set) []Finding {
	var out []Finding
	for _, f := range nft.TableFamilies {
		w, h := findTable(want, f), findTable(have, f)
		add := func(object, problem string) { out = append(out, Finding{Family: f, Object: object, Problem: problem}) }
		switch {
		case w == nil && h == nil:
			continue
		case w == nil:
			add("table "+nft.TableName, "not part of dnft's state")
			continue
		case h == nil:
			add("table "+nft.TableName, "missing")
			continue
		}
		compareChains(w, h, add)
		compareSets(f, w, h, packed[f], specs[f], add)
	}
	return out
}

func compareChains(w, h *nft.TableState, add func(object, problem string)) {
	for _, wc := range w.Chains {
		hc := h.Chain(wc.Name)
		obj := "chain " + wc.Name
		switch {
		case hc == nil:
			add(obj, "missing")
			continue
		case !sameBase(wc.Base, hc.Base):
			add(obj, fmt.Sprintf("changed (%s, want %s)", baseText(hc.Base), baseText(wc.Base)))
		}
		if wc.Name != chains.DockerUser {
			compareRules(w.Family, obj, wc.Rules, hc.Rules, add)
		}
	}
	for _, hc := range h.Chains {
		if w.Chain(hc.Name) == nil {
			add("chain "+hc.Name, "not dnft's")
		}
	}
}

func sameBase(a, b *nft.Base) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func baseText(b *nft.Base) string {
	if b == nil {
		return "regular chain"
	}
	return fmt.Sprintf("type %s hook %s priority %d policy %s", b.Type, b.Hook, b.Priority, b.Policy)
}

// compareRules compares a chain's rules (of family f) by what they do —
// their expressions in canonical form (see [nft.CanonicalExprs]) — and
// comment, then by order. A rule of the kernel that differs from the rule
// dnft wrote under the same comment is reported as changed. want's
// expressions are canonical already (see [nft.Tx.Objects]).
func compareRules(f nft.Family, obj string, want, have []nft.RuleState, add func(object, problem string)) {
	// The kernel's rules in canonical form, or why they have none.
	type read struct {
		nft.RuleState
		unreadable string
	}
	hs := make([]read, len(have))
	for i, h := range have {
		hs[i].RuleState = h
		canon, err := nft.CanonicalExprs(f, h.Exprs)
		if err != nil {
			var re *nft.RawRuleError
			if errors.As(err, &re) {
				err = errors.New(re.Reason)
			}
			hs[i].unreadable = err.Error()
		}
		hs[i].Exprs = canon
	}
	key := func(r nft.RuleState) string { return r.Comment + "\x00" + string(r.Exprs) }
	if slices.EqualFunc(want, hs, func(w nft.RuleState, h read) bool { return h.unreadable == "" && key(w) == key(h.RuleState) }) {
		return
	}
	left := make(map[string]int, len(want))
	for _, w := range want {
		left[key(w)]++
	}
	var extra []read
	for _, h := range hs {
		if k := key(h.RuleState); h.unreadable == "" && left[k] > 0 {
			left[k]--
			continue
		}
		extra = append(extra, h)
	}
	var missing []nft.RuleState
	for _, w := range want {
		if k := key(w); left[k] > 0 {
			left[k]--
			missing = append(missing, w)
		}
	}
	if len(extra) == 0 && len(missing) == 0 {
		add(obj, fmt.Sprintf("rules out of order (have %s, want %s)", comments(have), comments(want)))
		return
	}
	for _, h := range extra {
		what := fmt.Sprintf("%s rule %s (handle %d)", obj, strconv.Quote(h.Comment), h.Handle)
		i := slices.IndexFunc(missing, func(w nft.RuleState) bool { return w.Comment == h.Comment })
		switch {
		case h.Xt:
			add(what, "has iptables-compat (xt) expressions: not dnft's")
		case i >= 0 && h.unreadable != "":
			add(what, "changed: "+h.unreadable+", unlike dnft's rule")
		case i >= 0:
			add(what, "changed: does something else than dnft's rule with this comment")
		default:
			add(what, "not dnft's")
		}
		if i >= 0 {
			missing = slices.Delete(missing, i, i+1)
		}
	}
	for _, w := range missing {
		add(fmt.Sprintf("%s rule %s", obj, strconv.Quote(w.Comment)), "missing")
	}
}

// comments lists the comments of rules, quoted.
func comments(rs []nft.RuleState) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = strconv.Quote(r.Comment)
	}
	return strings.Join(out, ", ")
}

func compareSets(f nft.Family, w, h *nft.TableState, packed map[string]*packedSet, specs map[string]nft.Set, add func(object, problem string)) {
	for _, ws := range w.Sets {
		if h.Set(ws.Name) == nil {
			add("set "+ws.Name, "missing")
			continue
		}
		compareElements(f, ws.Name, ws.Elements, packed[ws.Name], specs, add)
	}
	for _, hs := range h.Sets {
		// Anonymous sets (inline { ... } lists) belong to the rule that
		// uses them: an operator's DOCKER-USER rule, or a foreign rule
		// reported as such.
		anonymous := strings.HasPrefix(hs.Name, "__set") || strings.HasPrefix(hs.Name, "__map")
		if w.Set(hs.Name) == nil && !anonymous {
			add("set "+hs.Name, "not dnft's")
		}
	}
}

// compareElements compares the elements dnft wrote to a set (want) with
// the kernel's (have): by key (interval ends apart), then by value: data,
// verdict (of a verdict map; its raw data, which the kernel also
// returns, is not compared) and comment.
func compareElements(f nft.Family, name string, want []nft.ElementState, have *packedSet, specs map[string]nft.Set, add func(object, problem string)) {
	obj := "set " + name
	spec, known := specs[name]
	text := func(e nft.ElementState) string { return elemText(f, spec, known, e) }
	report := func(e nft.ElementState, problem string) { add(obj+" element "+text(e), problem) }
	// The kernel's elements by key (interval ends apart: rare, in a map
	// of their own), then matched: O(n) for n elements. The keys are parts
	// of have's string, not copies.
	n := have.len()
	index := make(map[string]int32, n)
	var ends map[string]int32
	for i := range n {
		switch {
		case !have.elems[i].end:
			index[have.keyOf(i)] = int32(i)
		case ends == nil:
			ends = map[string]int32{have.keyOf(i): int32(i)}
		default:
			ends[have.keyOf(i)] = int32(i)
		}
	}
	matched := make([]bool, n)
	for _, we := range want {
		var i int32
		var ok bool
		if we.IntervalEnd {
			i, ok = ends[string(we.Key)]
		} else {
			i, ok = index[string(we.Key)]
		}
		switch {
		case !ok || matched[i]:
			report(we, "missing")
		case !have.same(int(i), we):
			matched[i] = true
			report(we, fmt.Sprintf("changed (%s, want %s)", elemData(f, have.element(int(i))), elemData(f, we)))
		default:
			matched[i] = true
		}
	}
	for i := range n {
		if !matched[i] {
			report(have.element(i), "not dnft's")
		}
	}
}

func elemKey(e nft.ElementState) string {
	if e.IntervalEnd {
		return "end/" + string(e.Key)
	}
	return string(e.Key)
}

// elemText renders an element's key the way nft does, when the set's
// fields are known.
func elemText(f nft.Family, spec nft.Set, known bool, e nft.ElementState) string {
	if !known {
		return fmt.Sprintf("0x%x", e.Key)
	}
	if spec.Interval {
		a, _ := netip.AddrFromSlice(e.Key)
		if e.IntervalEnd {
			return a.String() + " (interval end)"
		}
		return a.String()
	}
	vals, err := nft.DecodeKey(f, spec.Key, e.Key)
	if err != nil {
		return fmt.Sprintf("0x%x", e.Key)
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch spec.Key[i] {
		case nft.FieldIIFName, nft.FieldOIFName:
			parts[i] = strconv.Quote(v.Name)
		case nft.FieldSaddr, nft.FieldDaddr:
			parts[i] = v.Addr.String()
		case nft.FieldL4Proto:
			parts[i] = protoName(v.Proto)
		default:
			parts[i] = strconv.Itoa(int(v.Port))
		}
	}
	return strings.Join(parts, " . ")
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// elemData renders an element's data, verdict and comment.
func elemData(f nft.Family, e nft.ElementState) string {
	var parts []string
	if v := nft.ElementVerdict(e); v != nil {
		parts = append(parts, verdictText(*v))
	} else if len(e.Data) > 0 {
		if t, err := nft.DecodeTarget(f, e.Data); err == nil {
			parts = append(parts, t.String())
		} else {
			parts = append(parts, fmt.Sprintf("0x%x", e.Data))
		}
	}
	if e.Comment != "" {
		parts = append(parts, strconv.Quote(e.Comment))
	}
	if len(parts) == 0 {
		return "no data"
	}
	return strings.Join(parts, " ")
}

func verdictText(v nft.Verdict) string {
	switch v.Kind {
	case nft.Accept:
		return "accept"
	case nft.Drop:
		return "drop"
	case nft.Return:
		return "return"
	case nft.Jump:
		return "jump " + v.Chain
	case nft.Goto:
		return "goto " + v.Chain
	}
	return "verdict " + strconv.Itoa(int(v.Kind))
}
