package harness

import (
	"context"
	"testing"
)

// Scratch creates one empty namespace (only lo, up) for tests that need a
// kernel but no topology, such as checks of the rules dnft writes, or a
// CLI run that must not touch the test machine's own namespace. It is
// removed by t.Cleanup. It calls [RequireRoot] first.
func Scratch(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	ns, err := NewNS(ctx, "scratch")
	if err != nil {
		t.Fatalf("harness: scratch namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Remove(); err != nil {
			t.Errorf("harness: cleanup: %v", err)
		}
	})
	return ns
}
