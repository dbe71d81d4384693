package dnft

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/dnft/dnft/nft"
)

// anonSetDoc is an anonymous set of a rule kept as expressions: its key
// type and length, whether it holds ranges, and its elements (keys in
// hex, "-" before the key of an interval's end).
type anonSetDoc struct {
	KeyType  uint32   `json:"key_type"`
	KeyLen   uint32   `json:"key_len"`
	Interval bool     `json:"interval,omitempty"`
	Elements []string `json:"elements"`
}

// userRuleToDoc writes a DOCKER-USER rule for the state document: as its
// iptables form when it has one (programming that text gives the very
// same expressions), else as its expressions and anonymous sets; nft is
// the rule as nft lists it, for people.
func userRuleToDoc(r UserRule) userRuleDoc {
	d := userRuleDoc{Family: r.Family.String(), NFT: r.NFT}
	if text, ok := UserRuleIPTables(r); ok {
		d.IPTables = text
		return d
	}
	d.Expr, d.Comment = base64.StdEncoding.EncodeToString(r.Expr), r.Comment
	for _, s := range r.Sets {
		sd := anonSetDoc{KeyType: s.KeyType, KeyLen: s.KeyLen, Interval: s.Interval, Elements: []string{}}
		for _, e := range s.Elements {
			k := hex.EncodeToString(e.Key)
			if e.End {
				k = "-" + k
			}
			sd.Elements = append(sd.Elements, k)
		}
		d.Sets = append(d.Sets, sd)
	}
	return d
}

// userRuleFromDoc reads a DOCKER-USER rule of the state document at
// path: from "iptables" when set, else from "expr" (with "sets" and
// "comment") when set or when there is no "nft", else from "nft". Syntax is checked here; the expressions
// are checked by validUserRules.
func userRuleFromDoc(path string, rd userRuleDoc) (UserRule, error) {
	var f nft.Family
	switch rd.Family {
	case "ip":
		f = nft.IPv4
	case "ip6":
		f = nft.IPv6
	default:
		return UserRule{}, &FieldError{Field: path + ".family", Value: rd.Family, Reason: "must be ip or ip6"}
	}
	switch {
	case rd.IPTables != "":
		r, err := ParseUserRule(f, rd.IPTables, "")
		if err != nil {
			return UserRule{}, &FieldError{Field: path + ".iptables", Value: shortText(rd.IPTables), Reason: err.Error()}
		}
		r.NFT = rd.NFT
		return r, nil
	case rd.Expr != "" || rd.NFT == "":
		r := UserRule{Family: f, Comment: rd.Comment, NFT: rd.NFT}
		b, err := base64.StdEncoding.DecodeString(rd.Expr)
		if err != nil {
			return UserRule{}, &FieldError{Field: path + ".expr", Value: shortText(rd.Expr), Reason: "not base64: " + err.Error()}
		}
		r.Expr = b
		for i, sd := range rd.Sets {
			s := nft.AnonSet{KeyType: sd.KeyType, KeyLen: sd.KeyLen, Interval: sd.Interval}
			for j, e := range sd.Elements {
				end := len(e) > 0 && e[0] == '-'
				if end {
					e = e[1:]
				}
				k, err := hex.DecodeString(e)
				if err != nil {
					return UserRule{}, &FieldError{Field: fmt.Sprintf("%s.sets[%d].elements[%d]", path, i, j), Value: shortText(sd.Elements[j]), Reason: "not hex"}
				}
				s.Elements = append(s.Elements, nft.AnonElement{Key: k, End: end})
			}
			r.Sets = append(r.Sets, s)
		}
		return r, nil
	}
	r, err := ParseUserRule(f, "", rd.NFT)
	if err != nil {
		return UserRule{}, &FieldError{Field: path + ".nft", Value: shortText(rd.NFT), Reason: err.Error()}
	}
	return r, nil
}
