package vdrive

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A damaged group in the middle: acknowledged groups after it are cut off
// (and the cut is fdatasynced, so they are gone for good).
func TestJournalMiddleDamageKeepsLaterGroups(t *testing.T) {
	p := filepath.Join(t.TempDir(), JournalFile)
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := j.commit(map[uint64][]byte{i: bytes.Repeat([]byte{'a' + byte(i)}, 100)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	b, _ := os.ReadFile(p)
	size := len(b)
	// group 2 starts at magic + (8+13+100)
	g2 := len(journalMagic) + 8 + 13 + 100
	b[g2+8+20] ^= 0xff // one bit-rot byte in group 2's payload
	os.WriteFile(p, b, 0o600)
	j, keys, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	j.close()
	fi, _ := os.Stat(p)
	t.Logf("keys after reopen: %v; file %d -> %d bytes", keys, size, fi.Size())
	has3 := false
	for _, k := range keys {
		if k == 3 {
			has3 = true
		}
	}
	if !has3 {
		t.Errorf("acknowledged record 3 (a whole, valid group after the damaged one) lost")
	}
}

// A first open that died after creating the file and before its magic was
// durable (20 zero bytes, or part of the magic): the node cannot start.
func TestJournalShortFirstFileStartsFresh(t *testing.T) {
	for name, content := range map[string][]byte{"zeros": make([]byte, len(journalMagic)), "part": []byte(journalMagic[:7])} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), JournalFile)
			os.WriteFile(p, content, 0o600)
			j, _, _, err := openJournal(p)
			if err != nil {
				t.Errorf("journal with no record ever acknowledged refuses to open: %v", err)
				return
			}
			j.close()
		})
	}
}

// The rewrite renamed its file over the journal, then the folder's fsync
// failed: the error is ignored (write), j.f stays the old, unlinked file,
// the new file's lock is dropped; later acknowledged commits are lost.
func TestJournalCompactDirSyncFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, JournalFile)
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.commit(map[uint64][]byte{1: bytes.Repeat([]byte{'x'}, journalCompactAt+1)}, nil); err != nil {
		t.Fatal(err)
	}
	syncDir = func(string) error { return errors.New("injected EIO") }
	err = j.commit(nil, []uint64{1}) // triggers the rewrite; its dir sync fails
	syncDir = syncDirReal
	if err != nil {
		t.Fatal(err)
	}
	// The lock: another open should be refused while j is open.
	journalLockWait = 100 * time.Millisecond
	if j2, _, _, err := openJournal(p); err == nil {
		t.Errorf("a second open succeeded while the journal is open (lock lost with the rewrite's file)")
		j2.close()
	}
	// The next write's rewrite retry fails before its rename (ENOSPC on
	// the temp file, say): the commit is acknowledged all the same.
	compactFault = func() error { return errors.New("injected ENOSPC") }
	defer func() { compactFault = nil }()
	if err := j.commit(map[uint64][]byte{2: []byte(`{"acked":true}`)}, nil); err != nil {
		t.Fatal(err)
	}
	compactFault = nil
	j.close() // kill -9 equivalent: nothing more is written
	j3, keys, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	j3.close()
	if len(keys) != 1 || keys[0] != 2 {
		t.Errorf("after reopen keys %v, want [2]: acknowledged record 2 lost", keys)
	}
}
