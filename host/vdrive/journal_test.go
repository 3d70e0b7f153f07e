package vdrive

import "testing"

// FuzzLinkRecord: any bytes in a journal record are refused with an error
// or give a link whose folder is a directory write cap and whose name is
// clean; nothing panics.
func FuzzLinkRecord(f *testing.F) {
	f.Add([]byte(`{"dir":"tarn:dir:x","name":"a.txt","cap":"tarn:lit:orxxacq","size":3,"ctime":"2026-11-27T10:00:00Z","mtime":"2026-11-27T10:00:00Z"}`))
	f.Add([]byte(`{"dir":"tarn:dir:x","name":"a.txt","cap":"tarn:lit:orxxacq","root":"tarn:dir-ro:y","path":"/a/b","prev":"","also":["tarn:lit:x"],"at":"2026-11-27T10:00:00Z"}`))
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
