// Command sweep removes the network namespaces that earlier test runs left
// behind (see harness.Sweep): those whose owning test process is gone, and
// unowned "dnft-" namespaces older than -age. It leaves the namespaces of
// running tests alone. It then creates and removes one namespace, so that
// /run/netns is already a shared mount before tests start creating
// namespaces in parallel. .ci/run runs it before the tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dnft/dnft/test/harness"
)

func main() {
	age := flag.Duration("age", 30*time.Minute, "remove unowned dnft- namespaces older than this")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	removed, err := harness.Sweep(ctx, *age)
	for _, name := range removed {
		fmt.Println("sweep: removed leftover namespace", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(1)
	}
	ns, err := harness.NewNS(ctx, "sweep")
	if err == nil {
		err = ns.Remove()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep: create a namespace:", err)
		os.Exit(1)
	}
}
