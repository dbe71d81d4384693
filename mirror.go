package dnft

import (
	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"golang.org/x/sys/unix"
)

// recordSets are the sets and maps whose elements are dnft's records (see
// [recordsOf]), and the gateway counts that recordsOf consults.
var recordSets = map[string]bool{
	chains.SetNetworks:      true,
	chains.MapForwardOut:    true,
	portmap.MapDNATHost:     true,
	portmap.MapDNATAny:      true,
	portmap.SetDNATSkipHost: true,
	portmap.SetDNATSkipAny:  true,
	ingress.MapDNAT:         true,
	ingress.SetPorts:        true,
	ingress.SetGateways:     true,
}

// mirrorSet names a set of one family.
type mirrorSet struct {
	f    nft.Family
	name string
}

// mirror is a copy of dnft's records as dnft's own commits left them: a
// watch's truth. It is loaded once, then kept up to date from the
// notifications of the batches that the commit journal says dnft sent,
// element by element: what a batch touched, never a reading of the
// tables.
type mirror struct {
	tables map[nft.Family]bool
	sets   map[mirrorSet]map[string]nft.ElementState
}

// newMirror copies the records of tables (a snapshot, or what a state
// programs).
func newMirror(tables []nft.TableState) *mirror {
	m := &mirror{tables: map[nft.Family]bool{}, sets: map[mirrorSet]map[string]nft.ElementState{}}
	for _, t := range tables {
		m.tables[t.Family] = true
		for _, s := range t.Sets {
			if !recordSets[s.Name] {
				continue
			}
			elems := make(map[string]nft.ElementState, len(s.Elements))
			for _, e := range s.Elements {
				e.Packets, e.Bytes = 0, 0
				elems[elemKey(e)] = e
			}
			m.sets[mirrorSet{t.Family, s.Name}] = elems
		}
	}
	return m
}

// initialized reports whether the mirror holds dnft's IPv4 table.
func (m *mirror) initialized() bool { return m.tables[nft.IPv4] }

// apply applies one notification of a batch of dnft.
func (m *mirror) apply(e nft.Event) {
	if e.Table != nft.TableName || (e.Family != nft.IPv4 && e.Family != nft.IPv6) {
		return
	}
	key := mirrorSet{e.Family, e.Set}
	switch e.Type {
	case unix.NFT_MSG_NEWTABLE:
		m.tables[e.Family] = true
	case unix.NFT_MSG_DELTABLE:
		delete(m.tables, e.Family)
		for k := range m.sets {
			if k.f == e.Family {
				delete(m.sets, k)
			}
		}
	case unix.NFT_MSG_NEWSET:
		if recordSets[e.Set] && m.sets[key] == nil {
			m.sets[key] = map[string]nft.ElementState{}
		}
	case unix.NFT_MSG_DELSET:
		delete(m.sets, key)
	case unix.NFT_MSG_NEWSETELEM:
		if elems := m.sets[key]; elems != nil {
			for _, el := range e.Elements {
				el.Packets, el.Bytes = 0, 0
				elems[elemKey(el)] = el
			}
		}
	case unix.NFT_MSG_DELSETELEM:
		if elems := m.sets[key]; elems != nil {
			for _, el := range e.Elements {
				delete(elems, elemKey(el))
			}
		}
	}
}

// snapshot returns the records as tables, for [recordsOf].
func (m *mirror) snapshot() []nft.TableState {
	var out []nft.TableState
	for _, f := range nft.Families {
		if !m.tables[f] {
			continue
		}
		t := nft.TableState{Family: f}
		for k, elems := range m.sets {
			if k.f != f {
				continue
			}
			s := nft.SetState{Name: k.name, Elements: make([]nft.ElementState, 0, len(elems))}
			for _, e := range elems {
				s.Elements = append(s.Elements, e)
			}
			t.Sets = append(t.Sets, s)
		}
		out = append(out, t)
	}
	return out
}
