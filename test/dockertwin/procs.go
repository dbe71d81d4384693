package dockertwin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sweep kills, by PID, every process that belongs to this daemon: those
// in its network namespace (dockerd, containerd, shims, docker-proxy),
// those whose command line names Dir, and those in its cgroups (the
// containers' processes). It repeats until none is left.
func (d *Daemon) sweep() error {
	var ino uint64
	if st, err := os.Stat(d.NS.Path()); err == nil {
		ino = st.Sys().(*syscall.Stat_t).Ino
	}
	self := os.Getpid()
	var left []int
	for round := 0; round < 50; round++ {
		left = left[:0]
		for _, pid := range d.members(ino) {
			if pid == self || pid == 1 {
				continue
			}
			left = append(left, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes of %s still alive after SIGKILL: %v", d.Dir, left)
}

// members lists the PIDs that belong to the daemon (see sweep). Zombies
// are left out: they are gone once their parent reaps them.
func (d *Daemon) members(nsIno uint64) []int {
	var out []int
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if st, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && strings.HasPrefix(string(st[i+1:]), " Z") {
				continue
			}
		}
		// Only Docker's own programs are taken by namespace or command
		// line: a client (dnft docker) names the socket under Dir too.
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		mine := false
		if !daemonComm(strings.TrimSpace(string(comm))) {
			// fall through to the cgroup check only
		} else if nsIno != 0 {
			if l, err := os.Readlink(filepath.Join(dir, "ns", "net")); err == nil && l == fmt.Sprintf("net:[%d]", nsIno) {
				mine = true
			}
		}
		if !mine && daemonComm(strings.TrimSpace(string(comm))) {
			if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && strings.Contains(string(b), d.Dir) {
				mine = true
			}
		}
		if !mine {
			if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil && strings.Contains(string(b), ":/"+d.cgroup) {
				mine = true
			}
		}
		if mine {
			out = append(out, pid)
		}
	}
	return out
}

// daemonComm reports whether a process name (comm, at most 15 bytes) is
// one of the programs a daemon runs besides its containers.
func daemonComm(comm string) bool {
	for _, b := range daemonBinaries {
		if len(b) > 15 {
			b = b[:15]
		}
		if comm == b {
			return true
		}
	}
	return false
}

// removeCgroups removes the cgroup directories named name (and their
// children) in every hierarchy mounted under /sys/fs/cgroup.
func removeCgroups(name string) error {
	roots, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var errs []error
	for _, r := range roots {
		top := filepath.Join("/sys/fs/cgroup", r.Name(), name)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs) // children first
		for _, p := range dirs {
			var rerr error
			for range 50 {
				if rerr = syscall.Rmdir(p); rerr == nil || errors.Is(rerr, fs.ErrNotExist) {
					rerr = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if rerr != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", p, rerr))
			}
		}
	}
	return errors.Join(errs...)
}
