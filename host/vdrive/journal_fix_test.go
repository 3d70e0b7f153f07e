package vdrive

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
