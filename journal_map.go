package dnft

import (
	"errors"
	"fmt"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// journalSize is the size of a whole journal: header and ring.
const journalSize = journalHeader + journalSlots*journalSlot

// mapJournal makes the open lock file l's journal (see
// [nsLock.writeHeader]), at least journalSize bytes long, and maps it
// shared: recording a commit is then a store to memory that every
// process sees at once, as a write(2) would be, without a system call
// on the path of every commit. Called with the lock held exclusively,
// as every commit is.
func (l *nsLock) mapJournal() error {
	if err := l.writeHeader(); err != nil {
		return err
	}
	fd := int(l.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Size < journalSize {
		if err := unix.Ftruncate(fd, journalSize); err != nil {
			return err
		}
	}
	m, err := unix.Mmap(fd, 0, journalSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map: %w", err)
	}
	l.journal = m
	return nil
}

// unmapJournal releases the mapping of [nsLock.mapJournal].
func (l *nsLock) unmapJournal() error {
	if l.journal == nil {
		return nil
	}
	err := unix.Munmap(l.journal)
	l.journal = nil
	return err
}

// storeMapped copies b to the mapped dst. Only dnft shortens a lock
// file, and only the journal of another namespace (which no live
// Firewall maps); a fault from a file shortened behind dnft's back is
// returned as an error instead of killing the process.
func storeMapped(dst, b []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("the lock file was shortened by another program")
		}
	}()
	copy(dst, b)
	return nil
}
