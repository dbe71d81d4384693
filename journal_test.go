package dnft

import (
	"os"
	"path/filepath"
	"testing"
)

// TestJournalCookie: a lock file left by a namespace that is gone, found
// again by a new namespace with the same inode number, is not the new
// namespace's journal: it reads empty, and the new namespace's first
// commit starts a new journal.
func TestJournalCookie(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netns-1-2.lock")
	old := &nsLock{path: path, cookie: 7}
	defer old.close()
	if err := old.record(100, 5); err != nil {
		t.Fatal(err)
	}
	if used, init := mustJournal(t, path, 7).leftTables(); !used || !init {
		t.Fatalf("own journal: used %v initialized %v, want both", used, init)
	}
	if !mustJournal(t, path, 7).committed(100, 6) {
		t.Fatal("own commit not found")
	}
	if used, _ := mustJournal(t, path, 8).leftTables(); used {
		t.Fatal("another namespace's journal read as this one's")
	}
	if err := uninitialized(path, 8); err != nil {
		t.Fatalf("new namespace: %v, want not initialized", err)
	}
	if err := uninitialized(path, 7); err == nil {
		t.Fatal("old namespace: tables gone not seen")
	}

	cur := &nsLock{path: path, cookie: 8}
	defer cur.close()
	cur.next = commitReset
	if err := cur.record(200, 9); err != nil {
		t.Fatal(err)
	}
	j := mustJournal(t, path, 8)
	if used, init := j.leftTables(); !used || init {
		t.Fatalf("new journal: used %v initialized %v, want used, reset", used, init)
	}
	if j.committed(100, 6) {
		t.Fatal("the old namespace's commit survived in the new journal")
	}
	if used, _ := mustJournal(t, path, 7).leftTables(); used {
		t.Fatal("old cookie still reads a journal")
	}
	// Unknown cookie (old kernels): any journal is the namespace's.
	if used, _ := mustJournal(t, path, 0).leftTables(); !used {
		t.Fatal("cookie 0 reads no journal")
	}
}

func mustJournal(t *testing.T, path string, cookie uint64) journal {
	t.Helper()
	j, err := readJournal(path, cookie)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestJournalShortened: a lock file shortened behind dnft's back makes
// recording a commit fail with an error, not kill the process through
// the fault on its mapped journal.
func TestJournalShortened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netns-1-2.lock")
	l := &nsLock{path: path, cookie: 7}
	defer l.close()
	if err := l.record(100, 5); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.record(100, 6); err == nil {
		t.Fatal("record into a shortened lock file: no error")
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if err := l.record(100, 7); err != nil {
		t.Fatalf("record after reopening: %v", err)
	}
	if !mustJournal(t, path, 7).committed(100, 8) {
		t.Fatal("commit after reopening not found")
	}
}
