package vdrive

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReview5FailedLinksTornTail: a failed links file whose last line
// was cut short (a write that hit a full disk, a crash of the machine)
// neither swallows the next link the node keeps there nor hides every
// other line: the lines before and after it are read, listed and
// counted (Stats' Failed, which the operator's alert reads), and the
// torn line is shown as unreadable so that it can be dropped.
func TestReview5FailedLinksTornTail(t *testing.T) {
	dir := t.TempDir()
	b := &Behind{cfg: BehindConfig{Dir: dir}}
	first := FailedLink{Time: time.Now().UTC(), Path: "/up", Name: "a", Cap: "tarn:lit:me", Error: "x"}
	if err := b.writeFailed(first); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, FailedLinksFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"time":"2026-11-27T10:00:00Z","path":"/up","na`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	last := FailedLink{Time: time.Now().UTC(), Path: "/up", Name: "c", Cap: "tarn:lit:mm", Error: "y"}
	if err := b.writeFailed(last); err != nil {
		t.Fatal(err)
	}
	fs, err := ReadFailedLinks(dir)
	if err != nil {
		t.Fatalf("read failed links after a torn line: %v", err)
	}
	if len(fs) != 3 || fs[0].Name != "a" || fs[2].Name != "c" || fs[2].Cap != last.Cap || fs[1].Record == "" {
		t.Fatalf("failed links %+v, want a, the torn line as unreadable, c", fs)
	}
	if n, err := b.failedLines(); n != 3 || err != nil {
		t.Fatalf("Stats counts %d failed links (%v), want 3", n, err)
	}
	// Dropping the torn line keeps the others.
	n, err := RemoveFailedLinks(dir, func(i int, _ FailedLink) bool { return i == 1 })
	if err != nil || n != 1 {
		t.Fatalf("drop the torn line: %d, %v", n, err)
	}
	if fs, err := ReadFailedLinks(dir); err != nil || len(fs) != 2 || fs[0].Name != "a" || fs[1].Name != "c" {
		t.Fatalf("after the drop: %+v, %v", fs, err)
	}
}
