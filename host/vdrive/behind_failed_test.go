package vdrive

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// FuzzFailedLinks: any bytes in the failed links file are read as lines
// of FailedLink or refused with an error naming the line; nothing panics,
// and what is read writes back to lines that read the same.
func FuzzFailedLinks(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-27T10:00:00Z","path":"/up","name":"a","cap":"tarn:lit:x","error":"folder no longer at its path"}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"time":1}`))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := parseFailedLinks(b)
		if err != nil {
			return
		}
		var out []byte
		for _, f := range fs {
			line, err := json.Marshal(f)
			if err != nil {
				t.Fatalf("%+v does not marshal: %v", f, err)
			}
			out = append(append(out, line...), '\n')
		}
		again, err := parseFailedLinks(out)
		if err != nil || len(again) != len(fs) {
			t.Fatalf("written back: %d lines, %v; want %d", len(again), err, len(fs))
		}
	})
}

// TestRemoveFailedLinksKeepsAppends: lines the node appends while the
// CLI removes others are kept (both hold the lock), and the rewritten
// file stays private.
func TestRemoveFailedLinksKeepsAppends(t *testing.T) {
	dir := t.TempDir()
	b := &Behind{cfg: BehindConfig{Dir: dir}}
	for i := range 10 {
		if err := b.writeFailed(FailedLink{Time: time.Now(), Name: string(rune('a' + i)), Error: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if err := b.writeFailed(FailedLink{Time: time.Now(), Name: "n" + string(rune('a'+i%26)), Error: "later"}); err != nil {
				t.Error(err)
			}
		}
	}()
	removed := 0
	for range 5 {
		n, err := RemoveFailedLinks(dir, func(_ int, f FailedLink) bool { return f.Error == "x" && f.Name < "f" })
		if err != nil {
			t.Fatal(err)
		}
		removed += n
	}
	wg.Wait()
	fs, err := ReadFailedLinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 5 || len(fs) != 55 {
		t.Fatalf("removed %d, %d left; want 5 removed, 55 left", removed, len(fs))
	}
	fi, err := os.Stat(filepath.Join(dir, FailedLinksFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("failed links mode %v (%v), want 600", fi.Mode(), err)
	}
}
