package vdrive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
)

// writeBoltJournal makes an older version's journal in dir holding recs.
func writeBoltJournal(t *testing.T, dir string, recs map[uint64]string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, oldJournalFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(journalBucket)
		if err != nil {
			return err
		}
		for k, v := range recs {
			if err := b.Put(binary.BigEndian.AppendUint64(nil, k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// valuesInKeyOrder opens the journal at p and returns its records' values
// in replay (key) order.
func valuesInKeyOrder(t *testing.T, p string) []string {
	t.Helper()
	j, keys, recs, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	j.close()
	var vs []string
	for _, k := range keys {
		vs = append(vs, string(recs[k]))
	}
	return vs
}

// Downgrade, then upgrade: the older version ignored the log and began its
// keys at 1 again. Its records are all taken over, after the log's (they
// were made after them), in their own order; a takeover that stops before
// the old file is removed takes nothing over twice.
func TestJournalTakeoverKeyCollision(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, JournalFile)
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	// Key 1 live, key 2 made (deleted), key 3 live.
	if err := j.commit(map[uint64][]byte{1: []byte("new1"), 2: []byte("new2"), 3: []byte("new3")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.commit(nil, []uint64{2}); err != nil {
		t.Fatal(err)
	}
	j.close()
	old := map[uint64]string{1: "old1", 2: "old2", 4: "old4"}
	writeBoltJournal(t, dir, old)
	want := []string{"new1", "new3", "old1", "old2", "old4"}
	if got := valuesInKeyOrder(t, p); !slices.Equal(got, want) {
		t.Fatalf("after takeover: records %q in key order, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, oldJournalFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old journal still there after takeover: %v", err)
	}
	// A stop after the records were durable, before the old file went:
	// the same old file is there again at the next start.
	writeBoltJournal(t, dir, old)
	if got := valuesInKeyOrder(t, p); !slices.Equal(got, want) {
		t.Fatalf("after a second takeover of the same records: %q, want %q", got, want)
	}
}

// The open's clean-up of a rewrite's left-over files: exactly the names
// the rewrite makes, whatever characters the state folder's path holds;
// damaged journals kept for a human, and other files, stay.
func TestJournalOpenCleanupExactNames(t *testing.T) {
	for _, name := range []string{"plain", "st[a]te*?", `we\ird[`} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Skipf("folder name not allowed here: %v", err)
			}
			p := filepath.Join(dir, JournalFile)
			stray := []string{JournalFile + ".123", JournalFile + ".4294967295"}
			keep := []string{JournalFile + "-damaged-1700000000", JournalFile + ".bak", JournalFile + ".12x", JournalFile + ".", "other.123"}
			for _, n := range append(slices.Clone(stray), keep...) {
				if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			j, _, _, err := openJournal(p)
			if err != nil {
				t.Fatal(err)
			}
			j.close()
			for _, n := range stray {
				if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("rewrite's left-over %s not removed (%v)", n, err)
				}
			}
			for _, n := range keep {
				if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
					t.Errorf("%s removed by the open's clean-up: %v", n, err)
				}
			}
		})
	}
}

// Windows' rules, on Linux: the journal cannot be renamed over while it is
// open (Go opens files without FILE_SHARE_DELETE). The rewrite closes it,
// renames, opens and locks the new file; a rename that fails leaves the
// old journal open, locked and written on.
func TestJournalCompactReopen(t *testing.T) {
	for _, tc := range []struct {
		name      string
		renameErr bool // the rename fails even with the files closed
	}{
		{"renames", false},
		{"rename fails", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), JournalFile)
			j, _, _, err := openJournal(p)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { j.close() }()
			reopen, rename, wait := compactReopen, renameFile, journalLockWait
			t.Cleanup(func() { compactReopen, renameFile, journalLockWait = reopen, rename, wait })
			compactReopen = true
			renames := 0
			renameFile = func(from, to string) error {
				renames++
				if _, err := j.f.Stat(); !errors.Is(err, os.ErrClosed) {
					return errors.New("sharing violation: the journal is open")
				}
				if tc.renameErr {
					return errors.New("injected access denied")
				}
				return os.Rename(from, to)
			}
			if err := j.commit(map[uint64][]byte{1: bytes.Repeat([]byte{'x'}, journalCompactAt+1)}, nil); err != nil {
				t.Fatal(err)
			}
			if err := j.commit(nil, []uint64{1}); err != nil { // rewrites
				t.Fatal(err)
			}
			if renames != 1 {
				t.Fatalf("%d renames, want 1", renames)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if shrunk := fi.Size() < journalCompactAt; shrunk == tc.renameErr {
				t.Fatalf("journal %d bytes after the rewrite (rename fails: %v)", fi.Size(), tc.renameErr)
			}
			journalLockWait = 100 * time.Millisecond
			if j2, _, _, err := openJournal(p); err == nil {
				j2.close()
				t.Fatal("a second open got the journal after the rewrite: its lock was not taken back")
			}
			if err := j.commit(map[uint64][]byte{2: []byte("after")}, nil); err != nil {
				t.Fatalf("commit after the rewrite: %v", err)
			}
			j.close()
			if got := valuesInKeyOrder(t, p); !slices.Equal(got, []string{"after"}) {
				t.Fatalf("after reopen: %q, want [after]", got)
			}
		})
	}
}

// A rewrite that keeps failing is tried again only once the file grew by
// journalCompactAt or compactRetryEvery passed, not at every commit; the
// log has one warning per streak of failures, and a line at its end.
func TestJournalCompactBackoff(t *testing.T) {
	p := filepath.Join(t.TempDir(), JournalFile)
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { j.close() }()
	var logged bytes.Buffer
	j.setLogger(hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Info}))
	every := compactRetryEvery
	t.Cleanup(func() { compactFault, compactRetryEvery = nil, every })
	compactRetryEvery = time.Hour
	tries := 0
	compactFault = func() error { tries++; return errors.New("injected ENOSPC") }
	commit := func(puts map[uint64][]byte, dels ...uint64) {
		t.Helper()
		if err := j.commit(puts, dels); err != nil {
			t.Fatal(err)
		}
	}
	big := func(id uint64) { // a record of journalCompactAt bytes, put and made
		commit(map[uint64][]byte{id: bytes.Repeat([]byte{'x'}, journalCompactAt)})
		commit(nil, id)
	}
	wantTries := func(n int, when string) {
		t.Helper()
		if tries != n {
			t.Fatalf("%s: %d rewrites tried, want %d", when, tries, n)
		}
	}
	big(1) // its deletion leaves the file over the threshold, mostly dead: tried
	wantTries(1, "first commit over the threshold")
	commit(map[uint64][]byte{2: []byte("x")})
	for i := uint64(3); i < 23; i++ {
		commit(map[uint64][]byte{i: []byte("small")}, i-1)
	}
	wantTries(1, "20 commits after a failure")
	compactRetryEvery = 300 * time.Millisecond
	big(100)
	wantTries(2, "the file grew by journalCompactAt")
	commit(map[uint64][]byte{101: []byte("x")})
	wantTries(2, "a commit right after a failure")
	time.Sleep(compactRetryEvery + 50*time.Millisecond)
	commit(map[uint64][]byte{102: []byte("x")})
	wantTries(3, "a back-off period passed")
	if n := strings.Count(logged.String(), "cannot be rewritten"); n != 1 {
		t.Fatalf("%d warnings for one streak of failures, want 1:\n%s", n, logged.String())
	}
	compactFault = nil
	time.Sleep(compactRetryEvery + 50*time.Millisecond)
	commit(map[uint64][]byte{103: []byte("x")})
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= journalCompactAt {
		t.Fatalf("journal %d bytes after the failures ended", fi.Size())
	}
	if !strings.Contains(logged.String(), "rewritten again") {
		t.Fatalf("no line at the end of the streak:\n%s", logged.String())
	}
	j.close()
	if got := valuesInKeyOrder(t, p); len(got) != 4 { // 22, 101, 102, 103
		t.Fatalf("after reopen %d records, want 4", len(got))
	}
}

// The open's rewrite failing (disk full) does not keep the node from
// starting: the journal is whole, only longer; the failure is logged
// once the node's log is given, and writes retry it.
func TestJournalOpenCompactFails(t *testing.T) {
	p := filepath.Join(t.TempDir(), JournalFile)
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.commit(map[uint64][]byte{1: bytes.Repeat([]byte{'x'}, journalCompactAt/2)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.commit(map[uint64][]byte{2: []byte("live")}, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	j.close()
	t.Cleanup(func() { compactFault = nil })
	compactFault = func() error { return errors.New("injected ENOSPC") }
	j, keys, _, err := openJournal(p)
	if err != nil {
		t.Fatalf("open with a failing rewrite: %v", err)
	}
	defer j.close()
	if !slices.Equal(keys, []uint64{2}) {
		t.Fatalf("keys %v, want [2]", keys)
	}
	var logged bytes.Buffer
	j.setLogger(hclog.New(&hclog.LoggerOptions{Output: &logged}))
	if !strings.Contains(logged.String(), "injected ENOSPC") {
		t.Fatalf("the open's failed rewrite not logged:\n%s", logged.String())
	}
	if err := j.commit(map[uint64][]byte{3: []byte("after")}, nil); err != nil {
		t.Fatal(err)
	}
}
