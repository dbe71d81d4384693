package nft

// RuleExprs returns the canonical expressions of a rule dnft writes (see
// [CanonicalExprs]): what the kernel dumps for it, canonicalized, so that
// it can be compared with [RuleState.Exprs].
func RuleExprs(r Rule) ([]byte, error) {
	exprs, err := encodeRule(r)
	if err != nil {
		return nil, err
	}
	raw, err := encodeExprs(r.Family, exprs)
	if err != nil {
		return nil, err
	}
	return CanonicalExprs(r.Family, raw)
}
