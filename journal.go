package dnft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dnft/dnft/nft"
)

// The commit journal: right before every batch it sends, a Firewall
// records in the namespace's lock file which thread sends it and the
// generation before it. The kernel names the thread that sent a batch in
// the notification of the generation it produced (NFT_MSG_NEWGEN), and
// no other process can send from that thread: a watch tells dnft's own
// commits — an operation's, a repair's, a reset — from everyone else's by
// what dnft recorded before them, not by a process name that any program
// can take.
//
// The lock file starts with a header of journalHeader bytes: a magic
// number and the namespace's cookie (see [nft.Conn.NetNSCookie]), each
// little-endian. The lock file is named after the namespace's inode
// number, which the kernel reuses for a later namespace once one is
// gone: the cookie, never reused while the machine runs, tells that a
// journal belongs to another namespace than the one it is read for, and
// the first commit in the new namespace starts a new journal.
//
// After the header, the journal is a ring of journalSlots slots of
// journalSlot bytes, indexed by the generation: magic, thread ID,
// generation before the commit and kind of commit, each a little-endian
// uint32. Every commit of dnft holds the namespace lock, so slots are
// written by one writer at a time; a slot is overwritten only
// journalSlots commits later.
//
// The kind says whether the commit left dnft initialized: so "no dnft
// table" tells a namespace where dnft was never initialized or was reset
// (a valid, empty state) from one whose tables someone else deleted.
const (
	journalSlots = 64
	journalSlot  = 16
	journalMagic = 0x316a6e64 // "dnj1"

	journalHeader = 16
	headerMagic   = 0x31686e64 // "dnh1"
)

// Kinds of commits.
const (
	commitChange uint32 = iota // dnft's tables exist after it
	commitReset                // it removed dnft's tables
)

// record writes the journal slot of a commit about to be sent by thread
// tid from generation gen (a [nft.CommitHook]).
func (l *nsLock) record(tid int, gen uint32) error {
	if err := l.open(); err != nil {
		return err
	}
	if l.journal == nil {
		if err := l.mapJournal(); err != nil {
			return fmt.Errorf("commit journal %s: %w", l.path, err)
		}
	}
	off := journalHeader + int(gen%journalSlots)*journalSlot
	var b [journalSlot]byte
	binary.LittleEndian.PutUint32(b[0:], journalMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(tid))
	binary.LittleEndian.PutUint32(b[8:], gen)
	binary.LittleEndian.PutUint32(b[12:], l.next)
	l.next = commitChange
	if err := storeMapped(l.journal[off:off+journalSlot], b[:]); err != nil {
		return fmt.Errorf("commit journal %s: %w", l.path, err)
	}
	return nil
}

// recordReset records, without a commit, that dnft's tables are gone at
// generation gen by dnft's will (a reset of a namespace whose tables
// someone else had deleted already). Its thread ID is 0, which no thread
// has: no notification matches it.
func (l *nsLock) recordReset(gen uint32) error {
	l.next = commitReset
	return l.record(0, gen)
}

// writeHeader makes the open lock file the journal of l's namespace: a
// file whose header names another namespace (or none) loses its
// journal. Called with the lock held exclusively, as every commit is.
func (l *nsLock) writeHeader() error {
	var h [journalHeader]byte
	n, err := l.f.ReadAt(h[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if n == journalHeader && headerFor(h[:], l.cookie) {
		return nil
	}
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(h[0:], headerMagic)
	binary.LittleEndian.PutUint32(h[4:], 0)
	binary.LittleEndian.PutUint64(h[8:], l.cookie)
	_, err = l.f.WriteAt(h[:], 0)
	return err
}

// headerFor reports whether h is the header of the journal of the
// namespace with the given cookie (0: unknown, any journal is).
func headerFor(h []byte, cookie uint64) bool {
	return binary.LittleEndian.Uint32(h) == headerMagic &&
		(cookie == 0 || binary.LittleEndian.Uint64(h[8:]) == cookie)
}

// journal is the commit journal as read from a lock file.
type journal []byte

// readJournal reads the commit journal of the lock file at path for the
// namespace with the given cookie; a missing file, or the journal of
// another namespace, is an empty journal.
func readJournal(path string, cookie uint64) (journal, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("commit journal: %w", err)
	}
	defer f.Close()
	b := make([]byte, journalHeader+journalSlots*journalSlot)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("commit journal %s: %w", path, err)
	}
	if n < journalHeader || !headerFor(b, cookie) {
		return nil, nil
	}
	return journal(b[journalHeader:n]), nil
}

// committed reports whether dnft recorded that its thread tid sent the
// batch that produced generation gen: a slot names tid and a generation
// before gen, at most journalSlots commits before it.
func (j journal) committed(tid, gen uint32) bool {
	for off := 0; off+journalSlot <= len(j); off += journalSlot {
		s := j[off : off+journalSlot]
		if binary.LittleEndian.Uint32(s) != journalMagic || binary.LittleEndian.Uint32(s[4:]) != tid {
			continue
		}
		if d := gen - binary.LittleEndian.Uint32(s[8:]); d >= 1 && d <= journalSlots {
			return true
		}
	}
	return false
}

// leftTables reports what the last commit of dnft recorded in the
// journal left: used is false when the journal holds no commit (dnft
// never committed in the namespace since it was created, or since the
// machine started), initialized whether dnft's tables existed after it.
func (j journal) leftTables() (used, initialized bool) {
	var last uint32
	for off := 0; off+journalSlot <= len(j); off += journalSlot {
		s := j[off : off+journalSlot]
		if binary.LittleEndian.Uint32(s) != journalMagic {
			continue
		}
		g := binary.LittleEndian.Uint32(s[8:])
		if !used || int32(g-last) > 0 {
			used, last = true, g
			initialized = binary.LittleEndian.Uint32(s[12:]) != commitReset
		}
	}
	return used, initialized
}

// ErrTablesGone means that dnft's tables are gone although dnft's last
// commit (as the commit journal recorded it) left them in place:
// someone else deleted them (`nft flush ruleset`, `nft delete table`).
var ErrTablesGone = fmt.Errorf("%w: dnft's tables were deleted behind its back (dnft's last commit left them in place)", ErrStateUnknown)

// Uninitialized tells, for a namespace without dnft's tables (none in
// either family), whether that is a valid state or damage, by the commit
// journal of the namespace's lock file: nil when dnft never committed in
// the namespace or its last commit removed its tables (dnft reset, or a
// state without daemon restored) — dnft is simply not initialized —, and
// ErrTablesGone when its last commit left them. It is how check, save,
// list and the iptables view treat a namespace without dnft's tables,
// all the same way. c is bound to the namespace.
func Uninitialized(c *nft.Conn) error {
	path, err := lockPath(c.NetNSFd())
	if err != nil {
		return err
	}
	return uninitialized(path, c.NetNSCookie())
}

func uninitialized(lockPath string, cookie uint64) error {
	j, err := readJournal(lockPath, cookie)
	if err != nil {
		return err
	}
	if used, initialized := j.leftTables(); used && initialized {
		return ErrTablesGone
	}
	return nil
}
