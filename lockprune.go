package dnft

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pruneLocks removes, from the lock directory dir, the lock files of
// network namespaces that are gone (best effort; keep is never removed).
// A namespace lives while a task is in it, a process holds it open, or
// it is mounted (/run/netns/NAME); its lock file is removed only when
// none of these is found and nobody holds the lock.
func pruneLocks(dir, keep string) {
	files, err := filepath.Glob(filepath.Join(dir, "netns-*-*.lock"))
	if err != nil || len(files) < 2 {
		return
	}
	live := liveNetns()
	if live == nil {
		return
	}
	for _, p := range files {
		if p == keep || live[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "netns-"), ".lock")] {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = os.Remove(p) // waiters notice it (nsLock.current) and open the new file
		}
		f.Close()
	}
}

// liveNetns returns the network namespaces in use, as "DEV-INO" keys of
// lock file names: those of every task, of every open descriptor and of
// every nsfs mount of every mount namespace. It returns nil when /proc
// cannot be read.
func liveNetns() map[string]bool {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	live := map[string]bool{}
	var nsfsDev uint64
	add := func(path string) {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			live[strconv.FormatUint(st.Dev, 10)+"-"+strconv.FormatUint(st.Ino, 10)] = true
			nsfsDev = st.Dev
		}
	}
	add("/proc/self/ns/net")
	mountNS := map[string]bool{}
	var mounted []string
	for _, d := range procs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		base := filepath.Join("/proc", d.Name())
		tasks, _ := os.ReadDir(filepath.Join(base, "task"))
		for _, t := range tasks {
			add(filepath.Join(base, "task", t.Name(), "ns", "net"))
		}
		fds, _ := os.ReadDir(filepath.Join(base, "fd"))
		for _, fd := range fds {
			p := filepath.Join(base, "fd", fd.Name())
			if l, err := os.Readlink(p); err == nil && strings.HasPrefix(l, "net:[") {
				add(p)
			}
		}
		if mnt, err := os.Readlink(filepath.Join(base, "ns", "mnt")); err == nil && !mountNS[mnt] {
			mountNS[mnt] = true
			mounted = append(mounted, nsfsMounts(filepath.Join(base, "mountinfo"))...)
		}
	}
	for _, ino := range mounted {
		live[strconv.FormatUint(nsfsDev, 10)+"-"+ino] = true
	}
	return live
}

// nsfsMounts returns the inode numbers of the network namespaces mounted
// in a mountinfo file (root "net:[INO]" on an nsfs mount).
func nsfsMounts(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[3], "net:[") {
			continue
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(fields[3], "net:["), "]"))
	}
	return out
}
