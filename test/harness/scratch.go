package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// Scratch creates one empty namespace (only lo, up) for tests that need a
// kernel but no topology, such as checks of the rules dnft writes. It is
// removed by t.Cleanup. It calls [RequireRoot] first.
func Scratch(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	ns := &NS{Name: NamePrefix + hex.EncodeToString(rnd[:]) + "-scratch"}
	ctx := context.Background()
	if err := addNetns(ctx, ns.Name); err != nil {
		t.Fatalf("harness: create %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { _ = delNetns(ns.Name) })
	if err := ns.ip(ctx, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("harness: %s: %v", ns.Name, err)
	}
	return ns
}
