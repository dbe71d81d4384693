// Package blockfile opens files that the Go runtime's poller never
// sees: namespace and lock files are not pollable, and a process that
// opens nothing pollable never sets the poller up (an epoll instance, an
// eventfd and their system calls at the start of every dnft command).
package blockfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path as os.OpenFile does (flag and perm as open(2) takes
// them; close-on-exec is added), as a file in blocking mode that is not
// registered with the poller. Errors are *os.PathError, as
// os.OpenFile's.
func Open(path string, flag int, perm uint32) (*os.File, error) {
	for {
		fd, err := unix.Open(path, flag|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
