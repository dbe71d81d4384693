package main

import (
	"os"
	"runtime/debug"
)

// wholeTablesMemory is the soft memory limit of the commands that hold
// all of dnft's tables at once, a snapshot of the kernel's next to what it
// should be (check, save). Their live heap is at most ~75 MB at 65,000
// bindings, which Go's default (collect when the heap doubles) lets
// grow to ~170 MB of RSS; at this limit the collector runs earlier and
// returns freed pages sooner (~135 MB), and no slower. It is a soft
// limit: a larger state only makes the collector work more, within the
// runtime's cap of half the CPU.
const wholeTablesMemory = 128 << 20

// limitWholeTablesMemory sets [wholeTablesMemory] as the Go runtime's
// soft memory limit, unless the operator chose one with GOMEMLIMIT.
func limitWholeTablesMemory() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(wholeTablesMemory)
	}
}
