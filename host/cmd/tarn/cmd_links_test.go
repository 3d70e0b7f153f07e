package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestLinksListDrop: tarn links lists a client node's failed links,
// numbered; drop removes the lines named and keeps the others; bad
// numbers and relink of a stopped node fail in one line.
func TestLinksListDrop(t *testing.T) {
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
	if r := run(t, bin, nil, "links", "--node", dir); r.code != 0 || !strings.Contains(r.stdout, "no failed links") {
		t.Fatalf("links with none: %+v", r)
	}
	var lines []string
	for _, n := range []string{"one.txt", "two.txt", "three.txt"} {
		b, _ := json.Marshal(vdrive.FailedLink{Path: "/up", Name: n, Cap: "tarn:lit:" + strings.TrimSuffix(n, ".txt"), Size: 3,
			Error: "folder no longer at its path: /up is gone"})
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(filepath.Join(dir, vdrive.FailedLinksFile), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, bin, nil, "links", "--node", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "2 ") || !strings.Contains(r.stdout, "/up/two.txt") || !strings.Contains(r.stdout, "folder no longer at its path") {
		t.Fatalf("links: %+v", r)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no such entry", []string{"links", "drop", "9"}, 1, `no entry "9": there are 3`},
		{"not a number", []string{"links", "drop", "x"}, 1, `no entry "x"`},
		{"relink needs entries", []string{"links", "relink"}, 1, "give entry numbers"},
		{"relink needs the node running", []string{"links", "relink", "1"}, 1, "node is not running"},
		{"drop one", []string{"links", "drop", "2"}, 0, "dropped 1 line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, bin, nil, append(tc.args, "--node", dir)...)
			out := r.stdout + r.stderr
			if r.code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, %q: want %d and %q", r.code, out, tc.code, tc.want)
			}
			if tc.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("error not one line: %q", r.stderr)
			}
		})
	}
	fl, err := vdrive.ReadFailedLinks(dir)
	if err != nil || len(fl) != 2 || fl[0].Name != "one.txt" || fl[1].Name != "three.txt" {
		t.Fatalf("after drop 2: %+v %v", fl, err)
	}
}
