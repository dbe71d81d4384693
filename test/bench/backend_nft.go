package bench

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// nftBackend programs Docker's layout as native nft rules in table
// "ip docker", one `nft -f -` per operation: the approach of Docker's
// nftables backend and of knftables users, with a rule (not a set
// element) per published port. Deleting rules needs their handles, so
// Unpublish first lists the table with handles (`nft -a list table`) and
// finds the rules by their comments.
type nftBackend struct {
	ns *harness.NS
}

func (n *nftBackend) Name() string { return "nft-rules" }

func (n *nftBackend) Init(ctx context.Context) error {
	return n.nft(ctx, nftHeader+nftScript(InitRules()))
}

func (n *nftBackend) CreateNetwork(ctx context.Context, k int) error {
	return n.nft(ctx, nftScript(NetworkRules(k)))
}

func (n *nftBackend) Publish(ctx context.Context, bs []portmap.Binding) error {
	return n.nft(ctx, nftScript(bindingRules(bs)))
}

func (n *nftBackend) Unpublish(ctx context.Context, bs []portmap.Binding) error {
	out, _, err := runIn(ctx, n.ns, "", "nft", []string{"-a", "list", "table", nftTable})
	if err != nil {
		return err
	}
	handles := parseHandles(out)
	var sb strings.Builder
	for _, b := range bs {
		hs := handles[bindingComment(b)]
		if len(hs) != 3 {
			return fmt.Errorf("nft-rules: binding %s has %d rules, want 3", b, len(hs))
		}
		for _, h := range hs {
			fmt.Fprintf(&sb, "delete rule %s %s handle %s\n", nftTable, h.chain, h.handle)
		}
	}
	return n.nft(ctx, sb.String())
}

func (n *nftBackend) PrefillNetworks(ctx context.Context, from, to int) error {
	var rs []Rule
	for k := from; k < to; k++ {
		rs = append(rs, NetworkRules(k)...)
	}
	return n.nft(ctx, nftScript(rs))
}

func (n *nftBackend) PrefillBindings(ctx context.Context, bs []portmap.Binding) error {
	return n.Publish(ctx, bs)
}

func (n *nftBackend) Close() error { return nil }

func (n *nftBackend) nft(ctx context.Context, script string) error {
	_, _, err := runIn(ctx, n.ns, script, "nft", []string{"-f", "-"})
	return err
}

// nftScript renders rules as `add rule` / `insert rule` commands; moved
// jumps are left out (see [nftHeader]).
func nftScript(rs []Rule) string {
	var sb strings.Builder
	for _, r := range rs {
		if r.Move {
			continue
		}
		verb := "add"
		if r.Insert {
			verb = "insert"
		}
		fmt.Fprintf(&sb, "%s rule %s %s %s\n", verb, nftTable, r.NFTChainName(), r.NFT)
	}
	return sb.String()
}

type ruleHandle struct{ chain, handle string }

// parseHandles maps each rule comment of `nft -a list table` output to
// the chains and handles of the rules that carry it.
func parseHandles(listing string) map[string][]ruleHandle {
	out := map[string][]ruleHandle{}
	chain := ""
	sc := bufio.NewScanner(strings.NewReader(listing))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "chain "); ok {
			chain = strings.Fields(name)[0]
			continue
		}
		i := strings.Index(line, `comment "`)
		j := strings.LastIndex(line, "# handle ")
		if i < 0 || j < 0 {
			continue
		}
		c := line[i+len(`comment "`):]
		c = c[:strings.IndexByte(c, '"')]
		out[c] = append(out[c], ruleHandle{chain, strings.TrimSpace(line[j+len("# handle "):])})
	}
	return out
}
