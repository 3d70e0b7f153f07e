package vdrive

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzLinkRecord: any bytes in a journal record are refused with an error
// or give a link whose folder is a directory write cap and whose name is
// clean; nothing panics.
func FuzzLinkRecord(f *testing.F) {
	f.Add([]byte(`{"dir":"tarn:dir:x","name":"a.txt","cap":"tarn:lit:orxxacq","size":3,"ctime":"2026-11-27T10:00:00Z","mtime":"2026-11-27T10:00:00Z"}`))
	f.Add([]byte(`{"dir":"tarn:dir:x","name":"a.txt","cap":"tarn:lit:orxxacq","root":"tarn:dir-ro:y","path":"/a/b","prev":"","also":["tarn:lit:x"],"at":"2026-11-27T10:00:00Z"}`))
	f.Add([]byte(`{"dir":"tarn:dir:x","name":"a","cap":"tarn:lit:x","root":"tarn:dir-ro:y","path":"/a","moved":["/b","../c"]}`))
	f.Add([]byte(`{"name":"../x"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			return
		}
		ref, err := recordRef(rec)
		if err != nil {
			return
		}
		if ref.w == nil || ref.w.ReadCap() != ref.r {
			t.Fatalf("record %q gives folder %+v", b, ref)
		}
		if rec.Name == "" || rec.Name == "." || rec.Name == ".." {
			t.Fatalf("record %q gives name %q", b, rec.Name)
		}
		if _, parts, ok, err := recordPath(rec); err != nil || (ok && JoinPath(parts) != rec.Path) {
			t.Fatalf("record %q passed with path %q: %v", b, rec.Path, err)
		}
	})
}

// TestJournalGroupCommit: concurrent commits all land, and their records
// read back in key order after reopening.
func TestJournalGroupCommit(t *testing.T) {
	p := t.TempDir() + "/j.log"
	j, keys, _, err := openJournal(p)
	if err != nil || len(keys) != 0 {
		t.Fatalf("open: %v %v", keys, err)
	}
	const n = 64
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := j.next()
			errs <- j.commit(map[uint64][]byte{id: []byte{byte(i)}}, nil)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := j.commit(nil, []uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	j.close()
	j, keys, recs, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(keys) != n-2 || keys[0] != 3 || keys[len(keys)-1] != n || len(recs) != n-2 {
		t.Fatalf("reopened: %d keys %v..., want 3..%d", len(keys), keys[:min(3, len(keys))], n)
	}
	if id := j.next(); id != n+1 {
		t.Fatalf("next key after reopening %d, want %d", id, n+1)
	}
}

// TestJournalGroupCommitShares: commits that come while one is being
// written share the next batch (one write and one fdatasync for all of
// them, not one each), and every commit acknowledged is in the file as a
// crash leaves it: a copy taken with the journal still open (nothing
// closed or flushed from memory), opened afresh, holds each record.
func TestJournalGroupCommitShares(t *testing.T) {
	p := t.TempDir() + "/j.log"
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	// Hold the file's writer until every caller waits: the first caller
	// leads a transaction that waits for it, the others queue behind.
	j.wmu.Lock()
	const n = 32
	type ack struct {
		id  uint64
		err error
	}
	acks := make(chan ack, n)
	for i := range n {
		go func() {
			id := j.next()
			acks <- ack{id, j.commit(map[uint64][]byte{id: fmt.Appendf(nil, "record %d", i)}, nil)}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		j.mu.Lock()
		queued := len(j.waiting)
		j.mu.Unlock()
		// The leader has taken its batch out; the others wait behind it.
		if queued >= n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued, want %d", queued, n-1)
		}
		time.Sleep(time.Millisecond)
	}
	j.wmu.Unlock()
	acked := map[uint64]string{}
	for range n {
		a := <-acks
		if a.err != nil {
			t.Fatal(a.err)
		}
		acked[a.id] = ""
	}
	if txs := j.n.txs.Load(); txs >= n || txs > 2 {
		t.Fatalf("%d commits took %d transactions, want at most 2 (one for the leader, one shared by the rest)", n, txs)
	}
	if ops := j.n.ops.Load(); ops != n {
		t.Fatalf("transactions held %d commits, want %d", ops, n)
	}
	// The crash: the file as it is now, the journal never closed.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir() + "/crashed.log"
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	j2, keys, recs, err := openJournal(cp)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if len(keys) != n {
		t.Fatalf("after the crash the journal holds %d records, want the %d acknowledged", len(keys), n)
	}
	for id := range acked {
		if _, ok := recs[id]; !ok {
			t.Fatalf("acknowledged record %d is not in the journal after the crash", id)
		}
	}
}

// TestJournalTornTailAndCompaction: a batch cut short at the end (the
// node died while writing it, before its fdatasync ended: never
// acknowledged) is cut off at the open and later commits are read back
// after it; a journal mostly of deleted records is rewritten with its
// live records alone, which read back the same.
func TestJournalTornTailAndCompaction(t *testing.T) {
	p := t.TempDir() + "/j.log"
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := j.commit(map[uint64][]byte{j.next(): fmt.Appendf(nil, "r%d", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	whole, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tail := range [][]byte{{0, 0, 0}, {0, 0, 0, 40, 1, 2, 3, 4, 1}, {0, 0, 0, 1, 9, 9, 9, 9, 1}} {
		if err := os.WriteFile(p, append(slices.Clone(whole), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		j, keys, recs, err := openJournal(p)
		if err != nil {
			t.Fatalf("tail %v: %v", tail, err)
		}
		if len(keys) != 3 || string(recs[3]) != "r2" {
			t.Fatalf("tail %v: records %v", tail, keys)
		}
		if err := j.commit(map[uint64][]byte{j.next(): []byte("after")}, []uint64{1}); err != nil {
			t.Fatal(err)
		}
		j.close()
		j, keys, recs, err = openJournal(p)
		if err != nil {
			t.Fatal(err)
		}
		j.close()
		if fmt.Sprint(keys) != "[2 3 4]" || string(recs[4]) != "after" {
			t.Fatalf("tail %v: after a commit past the cut, records %v", tail, keys)
		}
	}

	j, _, _, err = openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10)
	for range journalCompactAt / len(big) * 2 {
		id := j.next()
		if err := j.commit(map[uint64][]byte{id: big}, nil); err != nil {
			t.Fatal(err)
		}
		if err := j.commit(nil, []uint64{id}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > journalCompactAt+int64(len(big))*2 {
		t.Fatalf("journal of %d bytes, nearly all deleted records, not rewritten", fi.Size())
	}
	if err := j.commit(map[uint64][]byte{j.next(): []byte("last")}, nil); err != nil {
		t.Fatal(err)
	}
	j.close()
	// A rewrite cut short by a crash leaves its file beside the journal.
	if err := os.WriteFile(p+".123", []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, keys, recs, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if _, err := os.Stat(p + ".123"); !os.IsNotExist(err) {
		t.Fatalf("a rewrite's file left by a crash is kept: %v", err)
	}
	if len(keys) != 4 || string(recs[keys[3]]) != "last" || string(recs[4]) != "after" {
		t.Fatalf("after the rewrite: records %v", keys)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten journal: %v %v, want mode 600", fi, err)
	}
}

// TestJournalInUse: a second open of a journal in use (another node over
// the same state folder) fails with a clear error instead of writing
// batches among the first one's; it opens once the first is closed, also
// after the first rewrote the file.
func TestJournalInUse(t *testing.T) {
	defer func(d time.Duration) { journalLockWait = d }(journalLockWait)
	journalLockWait = 200 * time.Millisecond
	p := t.TempDir() + "/j.log"
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.commit(map[uint64][]byte{j.next(): []byte("a")}, nil); err != nil {
		t.Fatal(err)
	}
	if j2, _, _, err := openJournal(p); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		if j2 != nil {
			j2.close()
		}
		t.Fatalf("second open: %v, want in use", err)
	}
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	if j2, _, _, err := openJournal(p); err == nil {
		j2.close()
		t.Fatal("second open after a rewrite got the journal")
	}
	j.close()
	j2, keys, _, err := openJournal(p)
	if err != nil || len(keys) != 1 {
		t.Fatalf("open after close: %v %v", keys, err)
	}
	j2.close()
}

// FuzzJournalFile: any bytes after the journal's first line open without
// a panic, as records or an error; once open, a commit is read back
// after them (a damaged tail is cut off, never written after).
func FuzzJournalFile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	valid := appendPuts(make([]byte, 8), map[uint64][]byte{1: []byte("a"), 7: []byte("bc")})
	sealBatch(valid)
	f.Add(valid)
	f.Add(append(slices.Clone(valid), 0, 0, 0, 9, 1))
	f.Add(valid[:len(valid)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		p := t.TempDir() + "/j.log"
		if err := os.WriteFile(p, append([]byte(journalMagic), b...), 0o600); err != nil {
			t.Fatal(err)
		}
		j, keys, recs, err := openJournal(p)
		if err != nil {
			return
		}
		if len(keys) != len(recs) {
			j.close()
			t.Fatalf("%d keys, %d records", len(keys), len(recs))
		}
		id := j.next()
		err = j.commit(map[uint64][]byte{id: []byte("after")}, nil)
		j.close()
		if err != nil {
			t.Fatal(err)
		}
		j, _, recs, err = openJournal(p)
		if err != nil {
			t.Fatalf("reopen after a commit: %v", err)
		}
		j.close()
		if string(recs[id]) != "after" || len(recs) != len(keys)+1 {
			t.Fatalf("after a commit: %d records (had %d), record %d %q", len(recs), len(keys), id, recs[id])
		}
	})
}
