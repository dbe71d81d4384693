//go:build linux && amd64

package integration_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

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
	// killDuringSend lets the sendmsg start and kills the process a given
	// delay after its thread runs, unless the call has returned by then:
	// the kernel has the batch when the kill arrives (or, with a short
	// delay, the kill may win the race with the call's start, and the
	// kernel skips the call).
	killDuringSend
	// killAfterSend kills when that sendmsg returns: the batch is
	// committed and its answer is unread.
	killAfterSend
)

func (m killMoment) String() string {
	return [...]string{"before the send", "during the send", "after the send"}[m]
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
	// return (zero if it did not return).
	call time.Duration
	// output is the process's stdout and stderr.
	output string
}

// tracedKill runs bin with args under ptrace(2), stopping every thread at
// each system call, and kills the process with SIGKILL at the moment m of
// its first batch send (for killDuringSend, delay after the call
// started). It returns once the process is gone.
func tracedKill(bin string, args []string, m killMoment, delay time.Duration) (traced, error) {
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
	res, err := traceUntilGone(pid, m, delay)
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
func traceUntilGone(pid int, m killMoment, delay time.Duration) (res traced, err error) {
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
	var sent time.Time // when the batch's sendmsg was entered
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
			switch m {
			case killBeforeSend:
				kill()
			case killDuringSend:
				_ = unix.PtraceSyscall(tid, 0) // the call starts...
				returned := awaitRunning(tid)
				if !returned && delay > 0 {
					time.Sleep(delay)
					returned = stoppedAgain(tid)
				}
				if returned {
					res.returned, res.call = true, time.Since(sent)
					inCall[tid] = false
				}
				kill() // ...and the kill follows
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

// awaitRunning waits until the thread tid, just resumed from a ptrace
// stop, runs (its state in /proc/TID/stat is no longer 't', tracing
// stop). It reports true if instead the thread stopped again first (the
// call is over), having consumed that stop.
func awaitRunning(tid int) bool {
	path := fmt.Sprintf("/proc/%d/stat", tid)
	for {
		if stoppedAgain(tid) {
			return true
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return true
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i < 0 || i+2 >= len(s) || s[i+2] != 't' {
			return false
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
