package nft

import "net/netip"

// prefixEnd returns the first address after the prefix, and false when the
// prefix reaches the end of the address space.
func prefixEnd(p netip.Prefix) (netip.Addr, bool) {
	a := p.Masked().Addr()
	b := a.AsSlice()
	host := len(b)*8 - p.Bits()
	// Set all host bits, then add one.
	for i := len(b)*8 - 1; i >= len(b)*8-host; i-- {
		b[i/8] |= 1 << (7 - i%8)
	}
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			end, _ := netip.AddrFromSlice(b)
			return end, true
		}
	}
	return netip.Addr{}, false
}
