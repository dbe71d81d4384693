package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/dnft/dnft"
)

// MemReport is what a dnft-like process holds after programming and after
// reading back n bindings ([MemChild]; printed by `dnft-bench mem`).
type MemReport struct {
	Bindings int `json:"bindings"`
	// Programmed and Listed are /proc/self/status after publishing all
	// bindings and after reading them back with Firewall.Ports.
	Programmed ProcStatus `json:"programmed"`
	Listed     ProcStatus `json:"listed"`
	// ListedCount is the number of bindings Ports returned.
	ListedCount int `json:"listed_count"`
	// HeapInuseKiB is the Go heap in use at the end.
	HeapInuseKiB uint64 `json:"heap_inuse_kib"`
}

// ProcStatus holds the memory lines of /proc/self/status, in KiB.
type ProcStatus struct {
	VmRSS int64 `json:"vmrss_kib"`
	VmHWM int64 `json:"vmhwm_kib"`
}

// ReadProcStatus reads VmRSS and VmHWM of the calling process.
func ReadProcStatus() (ProcStatus, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ProcStatus{}, err
	}
	defer f.Close()
	var s ProcStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.VmRSS
		case "VmHWM":
			dst = &s.VmHWM
		default:
			continue
		}
		if *dst, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err != nil {
			return s, fmt.Errorf("/proc/self/status %s: %w", k, err)
		}
	}
	return s, sc.Err()
}

// MemChild is the body of `dnft-bench mem`: in the empty namespace netns
// (a path or /run/netns name, ip_forward already on) it initialises dnft,
// creates network 0, publishes n bindings in batches as a runtime would,
// and reads them back, measuring its own memory after each step.
func MemChild(ctx context.Context, netns string, n int) (MemReport, error) {
	r := MemReport{Bindings: n}
	fw, err := dnft.Open(ctx, netns)
	if err != nil {
		return r, err
	}
	defer fw.Close()
	be := &dnftBackend{fw: fw}
	if err := be.Init(ctx); err != nil {
		return r, err
	}
	if err := be.CreateNetwork(ctx, 0); err != nil {
		return r, err
	}
	if err := be.PrefillBindings(ctx, bindings(0, n)); err != nil {
		return r, err
	}
	if r.Programmed, err = ReadProcStatus(); err != nil {
		return r, err
	}
	ps, err := fw.Ports(ctx)
	if err != nil {
		return r, err
	}
	r.ListedCount = len(ps)
	if r.Listed, err = ReadProcStatus(); err != nil {
		return r, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapInuseKiB = ms.HeapInuse / 1024
	return r, nil
}
