package vdrive

import (
	"fmt"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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
	p := t.TempDir() + "/j.db"
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
// written share the next transaction (two fdatasyncs for all of them,
// not two each), and every commit acknowledged is in the file as a
// crash leaves it: a copy taken with the journal still open (nothing
// closed or flushed from memory), opened afresh, holds each record.
func TestJournalGroupCommitShares(t *testing.T) {
	p := t.TempDir() + "/j.db"
	j, _, _, err := openJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	// Hold the file's writer until every caller waits: the first caller
	// leads a transaction that waits for it, the others queue behind.
	held := make(chan struct{})
	release := make(chan struct{})
	go j.db.Update(func(*bolt.Tx) error {
		close(held)
		<-release
		return nil
	})
	<-held
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
	close(release)
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
	cp := t.TempDir() + "/crashed.db"
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
