package dnft

import (
	"context"

	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
)

// famIndex is a family's index in view.ingress.
func famIndex(f nft.Family) int {
	if f == nft.IPv6 {
		return 1
	}
	return 0
}

// ingressActive reports whether the family has ingress maps (an ingress
// port), asking the kernel once per view.
func (fw *Firewall) ingressActive(ctx context.Context, f nft.Family) (bool, error) {
	i := famIndex(f)
	if fw.v.ingress[i] == 0 {
		ok, err := fw.conn.HasSet(ctx, f, ingress.MapDNAT)
		if err != nil {
			return false, err
		}
		fw.v.ingress[i] = 1
		if ok {
			fw.v.ingress[i] = 2
		}
	}
	return fw.v.ingress[i] == 2, nil
}

// ingressReader is the reader that container publications check ingress
// ports with: it answers "no such element" for the ingress map of a
// family without ingress ports, without asking the kernel, so that
// publishing costs nothing for ingress where swarm is not used.
type ingressReader struct{ fw *Firewall }

// ReadSet implements ingress.Reader.
func (r ingressReader) ReadSet(ctx context.Context, f nft.Family, name string) (nft.SetState, bool, error) {
	return r.fw.conn.ReadSet(ctx, f, name)
}

// ReadChain implements ingress.Reader.
func (r ingressReader) ReadChain(ctx context.Context, f nft.Family, name string) (nft.ChainState, bool, error) {
	return r.fw.conn.ReadChain(ctx, f, name)
}

// GetElement implements ingress.ElementGetter.
func (r ingressReader) GetElement(ctx context.Context, s nft.Set, key []nft.Value) (nft.ElementState, bool, error) {
	if s.Name == ingress.MapDNAT {
		active, err := r.fw.ingressActive(ctx, s.Family)
		if err != nil || !active {
			return nft.ElementState{}, false, err
		}
	}
	return r.fw.conn.GetElement(ctx, s, key)
}
