package nft

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// ElementVerdict returns the verdict of a verdict map element as read
// back: its Verdict, or, when google/nftables v0.3.0 left that out (it
// does for maps it lists), the verdict decoded from its raw data (the
// NFTA_VERDICT_CODE and NFTA_VERDICT_CHAIN attributes). It returns nil
// for an element that holds no verdict.
func ElementVerdict(e ElementState) *Verdict {
	if e.Verdict != nil {
		return e.Verdict
	}
	attrs, err := parseAttrs(e.Data)
	if err != nil || len(attrs) == 0 {
		return nil
	}
	var (
		code  int32
		chain string
		ok    bool
	)
	for _, a := range attrs {
		switch a.typ {
		case unix.NFTA_VERDICT_CODE:
			if len(a.data) != 4 {
				return nil
			}
			code, ok = int32(binary.BigEndian.Uint32(a.data)), true
		case unix.NFTA_VERDICT_CHAIN:
			chain = cString(a.data)
		default:
			return nil
		}
	}
	if !ok {
		return nil
	}
	switch code {
	case 1: // NF_ACCEPT
		return &Verdict{Kind: Accept}
	case 0: // NF_DROP
		return &Verdict{Kind: Drop}
	case unix.NFT_RETURN:
		return &Verdict{Kind: Return}
	case unix.NFT_JUMP:
		return &Verdict{Kind: Jump, Chain: chain}
	case unix.NFT_GOTO:
		return &Verdict{Kind: Goto, Chain: chain}
	}
	return nil
}
