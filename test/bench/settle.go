package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// How [settle] decides that the machine is quiet.
const (
	settleWindow = 200 * time.Millisecond // one look at the CPU counters
	settleBusy   = 0.15                   // busy share of all CPUs below which a window is quiet
	settleMax    = 10 * time.Second       // then the cell starts anyway
)

// settle waits until the machine is quiet: a window of settleWindow
// during which less than settleBusy of the CPUs' time was busy, or
// settleMax. The kernel tears a deleted namespace down in the
// background, and frees what a large commit replaced after an RCU grace
// period: a namespace with 500 bridges keeps a core busy for seconds
// after the cell that made it is over. A cell that started meanwhile
// would measure that work too, and a quick process-per-operation cell
// measured right after a heavy one would not be comparable with one
// measured on a quiet machine. [cell] calls it before a cell's setup,
// which wakes the CPUs up again before the timed loop. It returns how
// long it waited and whether the machine became quiet.
func settle(ctx context.Context) (time.Duration, bool) {
	t0 := time.Now()
	prev, err := readCPUTimes()
	if err != nil {
		return 0, false
	}
	for time.Since(t0) < settleMax {
		select {
		case <-ctx.Done():
			return time.Since(t0), false
		case <-time.After(settleWindow):
		}
		cur, err := readCPUTimes()
		if err != nil {
			return time.Since(t0), false
		}
		if total := cur.total - prev.total; total > 0 && float64(cur.busy-prev.busy)/float64(total) < settleBusy {
			return time.Since(t0), true
		}
		prev = cur
	}
	return time.Since(t0), false
}

// cpuTimes are the machine's busy and total CPU time, in clock ticks.
type cpuTimes struct{ busy, total uint64 }

// readCPUTimes reads the "cpu" line of /proc/stat: user, nice, system,
// idle, iowait, irq, softirq, steal (guest time is part of user).
func readCPUTimes() (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuTimes{}, errors.Join(errors.New("/proc/stat is empty"), sc.Err())
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", sc.Text())
	}
	var t cpuTimes
	for i, s := range fields[1:9] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t, nil
}
