package compat

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// encodeKey builds an element key as the kernel stores it (each field in
// its length, padded to 4 bytes when the key has several fields), the
// inverse of nft.DecodeKey.
func encodeKey(f nft.Family, fields []nft.Field, vals []nft.Value) []byte {
	var out []byte
	for i, fl := range fields {
		var b []byte
		switch fl {
		case nft.FieldSaddr, nft.FieldDaddr:
			b = vals[i].Addr.AsSlice()
		case nft.FieldL4Proto:
			b = []byte{vals[i].Proto}
		case nft.FieldIIFName, nft.FieldOIFName:
			b = make([]byte, 16)
			copy(b, vals[i].Name)
		default:
			b = binary.BigEndian.AppendUint16(nil, vals[i].Port)
		}
		if len(fields) > 1 {
			for len(b)%4 != 0 {
				b = append(b, 0)
			}
		}
		out = append(out, b...)
	}
	return out
}

func TestKernelCounters(t *testing.T) {
	c4 := netip.MustParseAddr("172.18.0.2")
	pub := nft.SetState{Name: chains.SetPublished, Elements: []nft.ElementState{{
		Key:     encodeKey(nft.IPv4, chains.PublishedSet(nft.IPv4).Key, []nft.Value{nft.Addr(c4), nft.Proto(6), nft.Port(80)}),
		Packets: 7, Bytes: 700,
	}}}
	k := &Kernel{Tables: map[Family]nft.TableState{IPv4: {
		Chains: []nft.ChainState{{Name: "filter-FORWARD", Rules: []nft.RuleState{
			{Comment: "DOCKER-USER", Packets: 10, Bytes: 1000},
			{Comment: "DOCKER-ISOLATION", Packets: 9, Bytes: 900},
			{Comment: "DOCKER", Packets: 8, Bytes: 800},
		}}, {Name: "X", Rules: []nft.RuleState{{Comment: "a", Packets: 3, Bytes: 30}, {Comment: "a", Packets: 1, Bytes: 10}}}},
		Sets: []nft.SetState{pub},
	}}}
	for _, tc := range []struct {
		src  *Source
		want Counter
	}{
		{ruleSrc("filter-FORWARD", "DOCKER-USER"), Counter{10, 1000}},
		{nextSrc("filter-FORWARD", "DOCKER-USER"), Counter{9, 900}},
		{nextSrc("filter-FORWARD", "DOCKER"), Counter{}},
		{ruleSrc("X", "a"), Counter{4, 40}},
		{ruleSrc("missing", "a"), Counter{}},
		{elemSrc(chains.SetPublished, key(c4, 6, 80)), Counter{7, 700}},
		{elemSrc(chains.SetPublished, key(c4, 6, 81)), Counter{}},
		{&Source{Plus: []Ref{{Chain: "X", Comment: "a"}}, Minus: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER"}}}, Counter{}},
		{&Source{Plus: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER"}}, Minus: []Ref{{Chain: "X", Comment: "a"}}}, Counter{4, 760}},
		{&Source{Plus: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER-USER"}}, Share: &Share{
			Part: []Ref{{Chain: "X", Comment: "a"}}, Rest: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER"}}}}, Counter{3, 47}},
		{&Source{Plus: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER-USER"}}, Share: &Share{
			Part: []Ref{{Chain: "X", Comment: "a"}}, Rest: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER"}}, Complement: true}}, Counter{7, 953}},
		{&Source{Plus: []Ref{{Chain: "filter-FORWARD", Comment: "DOCKER-USER"}}, Share: &Share{Part: []Ref{{Chain: "none"}}}}, Counter{10, 1000}},
		{nil, Counter{}},
	} {
		if got := k.Value(IPv4, tc.src); got != tc.want {
			t.Errorf("%s = %+v, want %+v", tc.src, got, tc.want)
		}
	}
	if scale(1<<63, 1<<63, 1, false) != 1<<63-1 {
		t.Error("scale overflows")
	}

	// Shared sources: the first rule of the chain counts, the others 0.
	rs := NewRuleset(IPv4)
	f := rs.Table(TableFilter)
	for i := 0; i < 2; i++ {
		r := MustParseRule(IPv4, "-d 172.18.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT")
		r.Source = elemSrc(chains.SetPublished, key(c4, 6, 80))
		if err := f.Append("FORWARD", r); err != nil {
			t.Fatal(err)
		}
	}
	ApplyCounters(rs, k)
	if got := f.Chain("FORWARD").Rules; got[0].Counter != (Counter{7, 700}) || got[1].Counter != (Counter{}) {
		t.Errorf("shared counters: %+v %+v", got[0].Counter, got[1].Counter)
	}
	if s := elemSrc(portmap.MapDNATAny, key(6, 8080)).String(); s != "element dnat-any[6 . 8080] (shared: first rule only)" {
		t.Errorf("String() = %q", s)
	}
}
