package bench

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// TestBackends runs every backend through a tiny workload: init, three
// networks (one pre-filled), bindings pre-filled, published and
// unpublished one at a time and in a batch.
func TestBackends(t *testing.T) {
	harness.RequireRoot(t)
	for _, name := range NetworkBackendNames {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ns := harness.Scratch(t)
			be, err := NewBackend(ctx, name, ns)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			steps := []struct {
				what string
				do   func() error
			}{
				{"init", func() error { return be.Init(ctx) }},
				{"prefill networks", func() error { return be.PrefillNetworks(ctx, 0, 1) }},
				{"create network 1", func() error { return be.CreateNetwork(ctx, 1) }},
				{"create network 2", func() error { return be.CreateNetwork(ctx, 2) }},
				{"prefill bindings", func() error { return be.PrefillBindings(ctx, bindings(0, 3)) }},
				{"publish one", func() error { return be.Publish(ctx, bindings(3, 1)) }},
				{"unpublish one", func() error { return be.Unpublish(ctx, bindings(3, 1)) }},
				{"publish batch", func() error { return be.Publish(ctx, bindings(10, 5)) }},
				{"unpublish batch", func() error { return be.Unpublish(ctx, bindings(10, 5)) }},
			}
			for _, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.what, err)
				}
			}
		})
	}
}

// TestRulesMatchReference checks that the baselines program exactly what
// test/reference (the contract's iptables programmer) programs for the
// same operations: the iptables-save output of both must be equal.
func TestRulesMatchReference(t *testing.T) {
	harness.RequireRoot(t)
	ctx := context.Background()
	refNS, benchNS := harness.Scratch(t), harness.Scratch(t)
	ref, err := reference.New(ctx, refNS.Name, daemonConfig)
	if err != nil {
		t.Fatal(err)
	}
	be, err := NewBackend(ctx, "restore-nft", benchNS)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		if err := ref.CreateNetwork(ctx, networkConfig(k)); err != nil {
			t.Fatal(err)
		}
		if err := be.CreateNetwork(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	bs := bindings(0, 3)
	if err := ref.Publish(ctx, networkName(0), bs); err != nil {
		t.Fatal(err)
	}
	if err := be.Publish(ctx, bs); err != nil {
		t.Fatal(err)
	}
	want, err := ref.Save(ctx, reference.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := benchNS.Run(ctx, "iptables-nft-save")
	if err != nil {
		t.Fatal(err)
	}
	if w, g := normalizeSave(want), normalizeSave(got); w != g {
		t.Errorf("baseline rules differ from the reference:\n--- reference\n%s\n--- baseline\n%s", w, g)
	}
}

var saveNoise = regexp.MustCompile(`^(#|:)|^COMMIT$`)

// normalizeSave drops comments, chain headers (counters) and COMMIT
// lines and sorts the tables' blocks by name, keeping rule order.
func normalizeSave(s string) string {
	blocks := map[string][]string{}
	table := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "*") {
			table = l
			continue
		}
		if l == "" || saveNoise.MatchString(l) {
			continue
		}
		blocks[table] = append(blocks[table], l)
	}
	var names []string
	for n := range blocks {
		names = append(names, n)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, n := range names {
		sb.WriteString(n + "\n" + strings.Join(blocks[n], "\n") + "\n")
	}
	return sb.String()
}
