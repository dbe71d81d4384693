package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// concurrencyOps is the number of operations of each of the two
// processes (DNFT_STRESS_OPS overrides it).
func concurrencyOps(t *testing.T) int {
	if s := os.Getenv("DNFT_STRESS_OPS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		return n
	}
	return 500
}

// opResult is one operation a process ran and whether it reported
// success.
type opResult struct {
	kind string // publish, unpublish, ingress+, ingress-
	port uint16
	ok   bool
}

const (
	stressPorts  = 24    // host ports 9000.. shared by both processes
	ingressPort  = 31000 // one ingress port, reference counted by both
	stressSubnet = "172.18.0.0/16"
)

// stressWorker runs n random operations, each as its own dnft process
// (the binary bin), for the container address c, and returns what each
// reported; an error for an operation that failed otherwise than by a
// refusal (exit 2). It runs on its own goroutine: no testing.T.
func stressWorker(ctx context.Context, bin string, ns *harness.NS, c string, seed uint64, n int) ([]opResult, error) {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := make([]opResult, 0, n)
	for range n {
		var (
			r    opResult
			args []string
		)
		p := uint16(9000 + rng.IntN(stressPorts))
		switch x := rng.IntN(100); {
		case x < 40:
			r, args = opResult{kind: "publish", port: p}, []string{"port", "publish", "n", c, "-p", fmt.Sprintf("%d:80", p)}
		case x < 75:
			r, args = opResult{kind: "unpublish", port: p}, []string{"port", "unpublish", "n", c, "-p", fmt.Sprintf("%d:80", p)}
		case x < 90:
			r, args = opResult{kind: "ingress+"}, []string{"ingress", "publish", "-p", fmt.Sprintf("%d/tcp", ingressPort), "--target", "172.30.0.2"}
		default:
			r, args = opResult{kind: "ingress-"}, []string{"ingress", "unpublish", "-p", fmt.Sprintf("%d/tcp", ingressPort)}
		}
		res, err := runDNFT(ctx, bin, ns, "", args...)
		if err != nil {
			return out, err
		}
		r.ok = res.code == 0
		if !r.ok && res.code != 2 {
			return out, fmt.Errorf("dnft %v: exit %d (only refusals, exit 2, are expected): %s", args, res.code, res.stderr)
		}
		out = append(out, r)
	}
	return out, nil
}

// TestConcurrentProcesses: two processes run random publish and unpublish
// operations on one namespace at the same time. The final state is the
// sequential result of the operations that reported success: every host
// port is published by the process whose last successful operation on it
// was a publish (only the publisher can unpublish a binding, so that is
// independent of the interleaving), at most one process, and the ingress
// port's reference count is the number of successful publications less
// the successful unpublications (a lost update would show there).
func TestConcurrentProcesses(t *testing.T) {
	ctx := testContext(t)
	ns := harness.Scratch(t)
	mustCLI(ctx, t, ns, "init", "--ip-forward")
	mustCLI(ctx, t, ns, "network", "create", "n", "--bridge", "br-n", "--subnet", stressSubnet)
	n := concurrencyOps(t)
	containers := []string{"172.18.0.2", "172.18.0.3"}
	results := make([][]opResult, len(containers))
	errs := make([]error, len(containers))
	bin := dnftBinary(t)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = stressWorker(ctx, bin, ns, c, uint64(i+1), n)
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	took := time.Since(start)
	t.Logf("%d processes x %d operations in %s (%.1f ms per operation)", len(containers), n, took.Round(time.Millisecond),
		float64(took.Milliseconds())/float64(n))

	want := map[uint16]string{} // host port -> container
	refs := 0
	successes := 0
	for i, rs := range results {
		last := map[uint16]bool{}
		for _, r := range rs {
			if !r.ok {
				continue
			}
			successes++
			switch r.kind {
			case "publish", "unpublish":
				last[r.port] = r.kind == "publish"
			case "ingress+":
				refs++
			case "ingress-":
				refs--
			}
		}
		for p, published := range last {
			if !published {
				continue
			}
			other, dup := want[p]
			require.False(t, dup, "port %d: both %s and %s report it published", p, other, containers[i])
			want[p] = containers[i]
		}
	}
	t.Logf("%d of %d operations succeeded; %d ports published, %d ingress references", successes, len(containers)*n, len(want), refs)

	var ports []struct {
		HostPort    uint16 `json:"host_port"`
		ContainerIP string `json:"container_ip"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCLI(ctx, t, ns, "port", "ls", "--json")), &ports))
	got := map[uint16]string{}
	for _, p := range ports {
		got[p.HostPort] = p.ContainerIP
	}
	require.Equal(t, want, got, "published ports")

	var ing []struct {
		Refs int `json:"refs"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCLI(ctx, t, ns, "ingress", "ls", "--json")), &ing))
	gotRefs := 0
	for _, p := range ing {
		gotRefs += p.Refs
	}
	require.Equal(t, refs, gotRefs, "ingress references")
	require.Equal(t, "", mustCLI(ctx, t, ns, "check"), "no drift")
}
