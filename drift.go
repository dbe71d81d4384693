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

// maxElemFindings bounds the element findings reported per set; the
// rest are counted in one more finding.
const maxElemFindings = 10

// Check compares dnft's tables in the kernel with what dnft's own
// records (the networks set, the DNAT maps, the ingress maps) say they
// should hold, and returns the differences: missing or foreign chains,
// rules (compared by chain, comment and order) and set elements (by set
// and key, then data and comment), and missing tables. DOCKER-USER's
// rules are the operator's and are never drift; the chain and its jump
// are. It also compares the kernel settings dnft keeps on the bridges
// that exist and their ports (route_localnet, bridge netfilter, hairpin
// mode: see [chains.LinkSettings]); a missing bridge is no drift.
//
// When dnft's records are gone (a deleted table, a flushed ruleset),
// saved — the last saved or known good state, which may be nil — is what
// the tables should hold; without it the result is a finding that the
// state is unknown. Check takes the namespace lock shared and changes
// nothing.
func (fw *Firewall) Check(ctx context.Context, saved *State) ([]Finding, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.lk.lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer unlock()
	findings, _, have, err := fw.inspect(ctx, saved)
	if errors.Is(err, ErrStateUnknown) {
		return unknownFindings(have, err), nil
	}
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return findings, nil
}

// Repair makes dnft's tables hold what [Firewall.Check] compares them
// with, in ONE batch, when they do not: it deletes dnft's tables and
// creates everything again (rule and element counters start from zero),
// with the DOCKER-USER rules the kernel holds, or, where that chain is
// gone, those of saved. It returns what was wrong; nothing is sent when
// nothing was. Without dnft's records and without saved it fails with
// ErrStateUnknown and changes nothing.
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
	g0, err := fw.conn.Generation(ctx)
	if err != nil {
		return nil, State{}, 0, err
	}
	findings, p, have, err := fw.inspect(ctx, saved)
	if errors.Is(err, ErrStateUnknown) {
		return nil, State{}, 0, fmt.Errorf("%w: pass a state saved with dnft save to repair from", err)
	}
	if err != nil || len(findings) == 0 {
		return findings, p.stateOrZero(), 0, err
	}
	if onlyLinkFindings(findings) {
		// Settings of bridges and ports: the tables are fine.
		_, err := fw.applyLinks(ctx, stateLinks(p.state))
		return findings, p.state, 0, err
	}
	if p.userBad != nil {
		return findings, p.state, 0, fmt.Errorf("repairing would lose a %s rule that dnft cannot re-create (%w): change that rule, or repair by hand", chains.DockerUser, p.userBad)
	}
	if saved != nil {
		p.state.DockerUser = flushedUser(p.state.DockerUser, saved.DockerUser, findings)
	}
	_, gen, err := fw.rebuild(ctx, p, families(have), g0)
	return findings, p.state, gen, err
}

// stateOrZero is p's state, or the zero State for a nil p.
func (p *programmed) stateOrZero() State {
	if p == nil {
		return State{}
	}
	return p.state
}

// inspect reads one snapshot of dnft's tables (have) and compares it with
// what they should hold (see [Firewall.desired]), built once (p).
func (fw *Firewall) inspect(ctx context.Context, saved *State) (findings []Finding, p *programmed, have []nft.TableState, err error) {
	if have, err = fw.readTables(ctx); err != nil {
		return nil, nil, nil, err
	}
	want, user, err := fw.desired(ctx, saved, have)
	if err != nil {
		return nil, nil, have, err
	}
	if p, err = fw.program(ctx, want); err != nil {
		return nil, nil, have, err
	}
	// The operator's rules are the kernel's where DOCKER-USER exists; if
	// one of those cannot be reproduced, a rebuild would lose it.
	p.userBad = user.bad()
	links, err := fw.linkDrift(ctx, p.state)
	if err != nil {
		return nil, nil, have, err
	}
	return append(compareTables(p.objs, have, p.specs), links...), p, have, nil
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

// desired returns what dnft's tables (have, a snapshot) should hold: the
// recorded state when dnft's records are complete, else saved.
// DOCKER-USER gets, per family, the rules the kernel holds when the chain
// exists (user says which, and which rules could not be read), else
// saved's.
func (fw *Firewall) desired(ctx context.Context, saved *State, have []nft.TableState) (State, userChains, error) {
	if saved != nil {
		s, err := saved.validate()
		if err != nil {
			return State{}, nil, fmt.Errorf("saved state: %w", err)
		}
		saved = &s
	}
	cur, user, err := fw.recordFrom(ctx, have)
	if err == nil && cur.Daemon == nil && saved == nil {
		// Never initialized, reset, or deleted: nothing tells which.
		err = fmt.Errorf("%w: there is no dnft table (its tables were deleted, or dnft was never initialized here)", ErrStateUnknown)
	}
	switch {
	case err == nil && (cur.Daemon != nil || saved.Daemon == nil):
		if saved != nil {
			cur.DockerUser = mergeUser(cur.DockerUser, user, saved.DockerUser)
		}
		return cur, user, nil
	case err == nil || errors.Is(err, ErrStateUnknown) && saved != nil:
		// No tables (but a saved state), or damaged records.
		want := cloneState(*saved)
		if want.Daemon == nil {
			return want, nil, nil
		}
		kernel, user, err := fw.readUser(ctx, want.Daemon.Families())
		if err != nil {
			return State{}, nil, err
		}
		want.DockerUser = mergeUser(kernel, user, want.DockerUser)
		return want, user, nil
	}
	return State{}, nil, err
}

// mergeUser takes the kernel's DOCKER-USER rules for the families whose
// chain exists (have) and saved's for the others.
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

// unknownFindings reports what can be seen in the snapshot have when
// the state is unknown (why).
func unknownFindings(have []nft.TableState, why error) []Finding {
	var out []Finding
	if findTable(have, nft.IPv4) == nil {
		out = append(out, Finding{Family: nft.IPv4, Object: "table " + nft.TableName, Problem: "missing (dnft's table is gone)"})
	}
	msg := strings.TrimPrefix(why.Error(), ErrStateUnknown.Error()+": ")
	return append(out, Finding{Family: nft.IPv4, Object: "state", Problem: "unknown (" + msg + "): pass a state saved with dnft save (--state FILE) to check against"})
}

// compareTables lists the differences between the tables dnft's state
// programs (want) and those in the kernel (have).
func compareTables(want, have []nft.TableState, specs map[nft.Family]map[string]nft.Set) []Finding {
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
		compareSets(f, w, h, specs[f], add)
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
			compareRules(obj, wc.Rules, hc.Rules, add)
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
	s := fmt.Sprintf("type %s hook %d priority %d", b.Type, b.Hook, b.Priority)
	if b.Policy != nft.PolicyAccept {
		s += " policy " + b.Policy.String()
	}
	return s
}

// compareRules compares a chain's rules by comment and order.
func compareRules(obj string, want, have []nft.RuleState, add func(object, problem string)) {
	comments := func(rs []nft.RuleState) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = strconv.Quote(r.Comment)
		}
		return out
	}
	wc, hc := comments(want), comments(have)
	xt := slices.ContainsFunc(have, func(r nft.RuleState) bool { return r.Xt })
	if slices.Equal(wc, hc) && !xt {
		return
	}
	left := map[string]int{}
	for _, c := range wc {
		left[c]++
	}
	moved := true
	for i, r := range have {
		c := hc[i]
		switch {
		case r.Xt:
			add(fmt.Sprintf("%s rule %s (handle %d)", obj, c, r.Handle), "has iptables-compat (xt) expressions: not dnft's")
			moved = false
		case left[c] > 0:
			left[c]--
		default:
			add(fmt.Sprintf("%s rule %s (handle %d)", obj, c, r.Handle), "not dnft's")
			moved = false
		}
	}
	for _, c := range wc {
		if left[c] > 0 {
			left[c]--
			add(fmt.Sprintf("%s rule %s", obj, c), "missing")
			moved = false
		}
	}
	if moved {
		add(obj, fmt.Sprintf("rules out of order (have %s, want %s)", strings.Join(hc, ", "), strings.Join(wc, ", ")))
	}
}

func compareSets(f nft.Family, w, h *nft.TableState, specs map[string]nft.Set, add func(object, problem string)) {
	for _, ws := range w.Sets {
		hs := h.Set(ws.Name)
		obj := "set " + ws.Name
		if hs == nil {
			add(obj, "missing")
			continue
		}
		spec, known := specs[ws.Name]
		text := func(e nft.ElementState) string { return elemText(f, spec, known, e) }
		index := map[string]nft.ElementState{}
		for _, e := range hs.Elements {
			index[elemKey(e)] = e
		}
		n := 0
		report := func(e nft.ElementState, problem string) {
			if n++; n <= maxElemFindings {
				add(obj+" element "+text(e), problem)
			}
		}
		for _, we := range ws.Elements {
			k := elemKey(we)
			he, ok := index[k]
			delete(index, k)
			switch {
			case !ok:
				report(we, "missing")
			case !sameElem(we, he):
				report(we, fmt.Sprintf("changed (%s, want %s)", elemData(f, he), elemData(f, we)))
			}
		}
		for _, he := range hs.Elements {
			if _, extra := index[elemKey(he)]; extra {
				report(he, "not dnft's")
			}
		}
		if n > maxElemFindings {
			add(obj, fmt.Sprintf("%d more element(s) differ", n-maxElemFindings))
		}
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

func elemKey(e nft.ElementState) string {
	if e.IntervalEnd {
		return "end/" + string(e.Key)
	}
	return string(e.Key)
}

// sameElem compares data (the verdict of a verdict map: its raw data,
// which the kernel also returns, is not compared) and comment.
func sameElem(a, b nft.ElementState) bool {
	va, vb := nft.ElementVerdict(a), nft.ElementVerdict(b)
	if a.Comment != b.Comment || (va == nil) != (vb == nil) {
		return false
	}
	if va != nil {
		return *va == *vb
	}
	return string(a.Data) == string(b.Data)
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
