//go:build linux && amd64

package integration_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnft/dnft/test/harness"
	"golang.org/x/sys/unix"
)

// killMoment says when tracedKill kills the process, relative to the
// sendmsg(2) that carries its nf_tables batch (the whole batch goes to the
// kernel in that one call, which commits it before returning).
type killMoment int

const (
	// killBeforeSend kills at the entry of that sendmsg: the batch never
	// reaches the kernel.
	killBeforeSend killMoment = iota
	// killDuringSend lets the sendmsg start and kills the process once
	// its thread has run inside the call for a given CPU time (at least
	// until it is on a CPU again), unless the call has returned by then:
	// the kernel has the batch when the kill arrives.
	killDuringSend
	// killAfterSend kills when that sendmsg returns: the batch is
	// committed and its answer is unread.
	killAfterSend
	// killAtCommit lets the sendmsg run and kills the process as the
	// kernel announces the commit (the first nf_tables notification that
	// the namespace's monitor socket receives), unless the call has
	// returned by then: the kernel is finishing the commit, past the point
	// where the batch could still be aborted.
	killAtCommit
)

func (m killMoment) String() string {
	return [...]string{"before the send", "during the send", "after the send", "at the commit"}[m]
}

// errTraceUnsupported is returned on systems tracedKill cannot trace;
// never here.
var errTraceUnsupported = errors.New("tracing the batch send needs linux/amd64")

// nfnlBatchBegin is NFNL_MSG_BATCH_BEGIN, the first message of a batch.
const nfnlBatchBegin = 0x10

// traced is what tracedKill saw.
type traced struct {
	// reached: the moment came (false: the process exited without
	// sending a batch).
	reached bool
	// returned: the batch's sendmsg returned to the process (for
	// killDuringSend, false means the kill arrived while the call was
	// under way, or before it started).
	returned bool
	// call is how long the batch's sendmsg took, from its entry to its
	// return (zero if it did not return), and cpu the CPU time its thread
	// spent in it (set for killAfterSend).
	call, cpu time.Duration
	// output is the process's stdout and stderr.
	output string
}

// tracedKill runs bin with args under ptrace(2), stopping every thread at
// each system call, and kills the process with SIGKILL at the moment m of
// its first batch send (for killDuringSend, once the thread has spent
// work CPU time in the call; for killAtCommit, when monitor, a netlink socket in the
// group NFNLGRP_NFTABLES of the process's namespace, becomes readable).
// It returns once the process is gone.
func tracedKill(bin string, args []string, m killMoment, work time.Duration, monitor int) (traced, error) {
	// The tracer is the thread that started the child: every ptrace call
	// must come from it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out, err := os.CreateTemp("", "dnft-crash-out")
	if err != nil {
		return traced{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out // files: no copying goroutines to wait for
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return traced{}, err
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Release() // reaped below with wait4
	res, err := traceUntilGone(pid, m, work, monitor)
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		for { // reap whatever is left
			if _, werr := unix.Wait4(-1, nil, unix.WALL, nil); werr != nil && !errors.Is(werr, unix.EINTR) {
				break
			}
		}
	}
	b, _ := os.ReadFile(out.Name())
	res.output = string(b)
	return res, err
}

// traceUntilGone drives the stopped child pid (stopped at its exec) until
// its thread group has exited, killing it at moment m.
func traceUntilGone(pid int, m killMoment, work time.Duration, monitor int) (res traced, err error) {
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return res, fmt.Errorf("wait for exec stop: %w", err)
	}
	if !ws.Stopped() {
		return res, fmt.Errorf("child did not stop at exec: %v", ws)
	}
	const opts = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL
	if err := unix.PtraceSetOptions(pid, opts); err != nil {
		return res, fmt.Errorf("ptrace options: %w", err)
	}
	if err := unix.PtraceSyscall(pid, 0); err != nil {
		return res, fmt.Errorf("ptrace resume: %w", err)
	}
	inCall := map[int]bool{} // thread -> its next syscall stop is an exit
	batchThread := 0
	var sent time.Time    // when the batch's sendmsg was entered
	var atEntry schedStat // its thread's, stopped there
	kill := func() {
		res.reached = true
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	for {
		tid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("wait: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			if tid == pid { // the leader is reported once the group is gone
				return res, nil
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		sig := 0
		switch s := ws.StopSignal(); {
		case s == unix.SIGTRAP|0x80: // syscall entry or exit
			entry := !inCall[tid]
			inCall[tid] = entry
			if !entry && tid == batchThread {
				res.returned, res.call = true, time.Since(sent)
				if m == killAfterSend {
					atExit, err := readSchedStat(tid)
					if err != nil {
						return res, err
					}
					res.cpu = atExit.run - atEntry.run
					kill()
				}
				break
			}
			var regs unix.PtraceRegs
			if !entry || batchThread != 0 || unix.PtraceGetRegs(tid, &regs) != nil ||
				regs.Orig_rax != unix.SYS_SENDMSG || !sendsBatch(tid, uintptr(regs.Rsi)) {
				break
			}
			batchThread, sent = tid, time.Now()
			if atEntry, err = readSchedStat(tid); err != nil {
				return res, err
			}
			switch m {
			case killBeforeSend:
				kill()
			case killDuringSend:
				_ = unix.PtraceSyscall(tid, 0) // the call starts...
				returned, err := awaitProgress(tid, atEntry, work)
				if err != nil {
					return res, err
				}
				if returned {
					res.returned, res.call = true, time.Since(sent)
					inCall[tid] = false
				}
				kill() // ...and the kill follows
				continue
			case killAtCommit:
				if err := drain(monitor); err != nil {
					return res, err
				}
				_ = unix.PtraceSyscall(tid, 0) // the call runs...
				returned, err := awaitReadable(tid, monitor)
				if err != nil {
					return res, err
				}
				if returned {
					res.returned, res.call = true, time.Since(sent)
					inCall[tid] = false
				}
				kill() // ...and the kill follows the commit's announcement
				continue
			}
		case s == unix.SIGTRAP, s == unix.SIGSTOP:
			// exec, clone and new-thread stops: nothing to deliver.
		default:
			sig = int(s) // a real signal (the Go runtime's SIGURG, ...)
		}
		_ = unix.PtraceSyscall(tid, sig) // fails harmlessly for a dying thread
	}
}

// awaitProgress waits until the thread tid, just resumed from its ptrace
// stop at a system call's entry (where its statistics were atEntry), has
// been switched onto a CPU since that stop and has run for work CPU time
// since then: inside the call from the moment it runs, for the call's
// entry checks for a fatal signal once, right as the thread runs (a
// thread that is only runnable, waiting for a CPU on a loaded machine,
// would see a kill at that check and skip the call). Progress is counted
// in the thread's own CPU time, which a loaded machine does not stretch,
// whereas a wall-clock delay would often outlast the call. It reports
// true if instead the thread stopped again first (the call is over),
// having consumed that stop.
func awaitProgress(tid int, atEntry schedStat, work time.Duration) (bool, error) {
	for {
		if stoppedAgain(tid) {
			return true, nil
		}
		now, err := readSchedStat(tid)
		if err != nil {
			return false, err
		}
		if now.switches != atEntry.switches && now.run-atEntry.run >= work {
			return false, nil
		}
	}
}

// schedStat is a thread's scheduling statistics (/proc/TID/schedstat).
type schedStat struct {
	// run is the CPU time the thread has used (brought up to date at
	// each scheduler tick and switch out).
	run time.Duration
	// switches counts the times the thread was switched onto a CPU.
	switches uint64
}

// readSchedStat reads the thread tid's scheduling statistics.
func readSchedStat(tid int) (schedStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", tid))
	if err != nil {
		return schedStat{}, fmt.Errorf("thread %d's schedule statistics: %w", tid, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return schedStat{}, fmt.Errorf("thread %d's schedule statistics: %q", tid, b)
	}
	run, err1 := strconv.ParseInt(f[0], 10, 64)
	switches, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || switches == 0 {
		return schedStat{}, fmt.Errorf("thread %d's schedule statistics: %q (need CONFIG_SCHED_INFO)", tid, b)
	}
	return schedStat{run: time.Duration(run), switches: switches}, nil
}

// commitMonitor opens a netlink socket in ns that receives its nf_tables
// notifications (the group NFNLGRP_NFTABLES): the kernel sends them as it
// commits a batch, before the sendmsg carrying the batch returns.
func commitMonitor(ns *harness.NS) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("monitor socket: %w", err)
		}
		sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.NFNLGRP_NFTABLES - 1)}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fmt.Errorf("monitor socket: join the nftables group: %w", err)
		}
		return nil
	})
	return fd, err
}

// awaitReadable waits until the netlink socket fd has a message queued,
// or the thread tid, just resumed from its ptrace stop at a system call's
// entry, has stopped again (the call is over: it reports true, having
// consumed that stop).
func awaitReadable(tid, fd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if stoppedAgain(tid) {
			return true, nil
		}
		n, err := unix.Poll(fds, 1) // a millisecond: the call's return is checked between
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return false, fmt.Errorf("poll the monitor: %w", err)
		case n > 0:
			return stoppedAgain(tid), nil
		}
	}
}

// drain discards what the netlink socket fd has queued (the notifications
// of earlier commits, or the overrun error of a full buffer).
func drain(fd int) error {
	buf := make([]byte, 64<<10)
	for {
		_, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR):
			return fmt.Errorf("drain the monitor: %w", err)
		}
	}
}

// stoppedAgain reports whether the resumed thread tid has stopped (or
// gone), consuming that stop: after a syscall entry stop, the next stop
// is the call's return.
func stoppedAgain(tid int) bool {
	var ws unix.WaitStatus
	got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
	return got == tid || (err != nil && !errors.Is(err, unix.EINTR))
}

// sendsBatch reports whether the sendmsg(2) that the stopped thread tid is
// entering, with its struct msghdr at msg, starts an nf_tables batch.
func sendsBatch(tid int, msg uintptr) bool {
	var hdr [32]byte // void *name; socklen_t namelen; struct iovec *iov; size_t iovlen
	if _, err := unix.PtracePeekData(tid, msg, hdr[:]); err != nil {
		return false
	}
	iov := uintptr(binary.LittleEndian.Uint64(hdr[16:]))
	if iov == 0 || binary.LittleEndian.Uint64(hdr[24:]) == 0 {
		return false
	}
	var vec [16]byte // void *base; size_t len
	if _, err := unix.PtracePeekData(tid, iov, vec[:]); err != nil {
		return false
	}
	base := uintptr(binary.LittleEndian.Uint64(vec[:]))
	if base == 0 || binary.LittleEndian.Uint64(vec[8:]) < 16 {
		return false
	}
	var nlh [16]byte // struct nlmsghdr
	if _, err := unix.PtracePeekData(tid, base, nlh[:]); err != nil {
		return false
	}
	return binary.LittleEndian.Uint16(nlh[4:]) == nfnlBatchBegin
}
