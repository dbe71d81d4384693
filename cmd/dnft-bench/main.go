// Command dnft-bench is the "dnft-like process" of dnft's memory
// benchmark (test/bench): it programs published ports through the dnft
// library in a namespace and reports its own resident memory.
//
//	dnft-bench mem -netns NAME|PATH -bindings N
//
// The namespace must be empty with IP forwarding on. It prints one JSON
// object (see bench.MemReport): VmRSS and VmHWM from /proc/self/status
// after publishing N bindings (in batches) and after reading them back.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/dnft/dnft/test/bench"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "mem" {
		fmt.Fprintln(os.Stderr, "usage: dnft-bench mem -netns NAME|PATH -bindings N")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("mem", flag.ExitOnError)
	netns := fs.String("netns", "", "network namespace (a name under /run/netns or a path); required")
	n := fs.Int("bindings", 10000, "bindings to publish")
	_ = fs.Parse(os.Args[2:])
	if *netns == "" || *n < 0 {
		fs.Usage()
		os.Exit(2)
	}
	r, err := bench.MemChild(context.Background(), *netns, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnft-bench:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "dnft-bench:", err)
		os.Exit(1)
	}
}
