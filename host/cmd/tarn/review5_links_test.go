package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestReview5LinksListOddNames: a failed link whose name holds a
// newline, a tab or a terminal escape (names may hold any valid UTF-8
// but "/" and NUL) is listed on one line of its own, quoted, and no
// control byte from the name reaches the operator's terminal.
func TestReview5LinksListOddNames(t *testing.T) {
	bin := buildTarn(t)
	root := t.TempDir()
	intro := filepath.Join(root, "intro")
	if r := run(t, bin, nil, "init", "--profile", "introducer", intro); r.code != 0 {
		t.Fatalf("init introducer: %+v", r)
	}
	dir := filepath.Join(root, "client")
	if r := run(t, bin, nil, "init", "--profile", "client", "--grid-secret", filepath.Join(intro, "private", "grid.secret"), dir); r.code != 0 {
		t.Fatalf("init client: %+v", r)
	}
	var lines []string
	for _, n := range []string{"a\nb.txt", "c\x1b[2Jd.txt", "plain.txt"} {
		b, _ := json.Marshal(vdrive.FailedLink{Path: "/up", Name: n, Cap: "tarn:lit:mfrgg", Size: 3, Error: "folder no longer at its path"})
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(filepath.Join(dir, vdrive.FailedLinksFile), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, bin, nil, "links", "--node", dir)
	if r.code != 0 {
		t.Fatalf("links: %+v", r)
	}
	out := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(out) != 4 || strings.ContainsRune(r.stdout, '\x1b') || !strings.Contains(r.stdout, `a\nb.txt`) || !strings.Contains(r.stdout, "/up/plain.txt") {
		t.Fatalf("listing of odd names, %d lines:\n%s", len(out), r.stdout)
	}
}
