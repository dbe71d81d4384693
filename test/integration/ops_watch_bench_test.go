package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft/portmap"
)

// BenchmarkPublishWatch measures what a running dnft watch costs a dnft
// writer: one Publish plus one Unpublish of a single binding while 10000
// others are published, through the library and through the dnft
// command, without and with `dnft watch` running on the namespace. The
// watch recognises dnft's commits by the commit journal and applies
// their notifications to its copy of the records, without the namespace
// lock and without reading the tables: both must cost the same
// (CONTRACT: within 1.2x).
//
//	go test ./test/integration -run XXX -bench PublishWatch -benchtime 100x
func BenchmarkPublishWatch(b *testing.B) {
	for _, cli := range []bool{false, true} {
		for _, watch := range []bool{false, true} {
			via := "library"
			if cli {
				via = "cli"
			}
			b.Run(fmt.Sprintf("%s/bindings=10000/watch=%v", via, watch), func(b *testing.B) {
				benchPublishWatch(b, cli, watch)
			})
		}
	}
}

func benchPublishWatch(b *testing.B, cli, watch bool) {
	ctx := context.Background()
	ns, fw := prefilled(ctx, b, 10000)
	bin := dnftBinary(b)
	var logs lockedBuf
	cmdPID := 0
	if watch {
		cmd := exec.CommandContext(ctx, bin, "--netns", ns.Path(), "watch")
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmdPID = cmd.Process.Pid
		defer func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}()
		if !waitFor(time.Minute, func() bool { return strings.Contains(logs.String(), "watching") }) {
			b.Fatalf("watch did not start: %s", logs.String())
		}
	}
	one := []portmap.Binding{{Proto: portmap.TCP, HostPort: 8080, ContainerIP: netip.MustParseAddr("172.18.255.2"), ContainerPort: 80}}
	run := func(args ...string) {
		out, err := exec.CommandContext(ctx, bin, append([]string{"--netns", ns.Path()}, args...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("dnft %v: %v: %s", args, err, out)
		}
	}
	var cpu0 time.Duration
	if watch {
		cpu0 = cpuTime(b, cmdPID)
	}
	b.ResetTimer()
	for range b.N {
		if cli {
			run("port", "publish", "a", "172.18.255.2", "-p", "8080:80")
			run("port", "unpublish", "a", "172.18.255.2", "-p", "8080:80")
			continue
		}
		if err := fw.Publish(ctx, "a", one); err != nil {
			b.Fatal(err)
		}
		if err := fw.Unpublish(ctx, "a", one); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if watch {
		b.ReportMetric(float64(cpuTime(b, cmdPID)-cpu0)/float64(b.N), "watch-cpu-ns/op")
	}
	if watch && strings.Contains(logs.String(), "drift:") {
		b.Fatalf("the watch saw drift in dnft's own commits:\n%s", logs.String())
	}
}

// cpuTime is the CPU time (user and system) process pid has used.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (in parentheses): utime and stime
	// are the 12th and 13th, in clock ticks (100 per second).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}
