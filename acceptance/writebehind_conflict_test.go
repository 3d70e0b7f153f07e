//go:build acceptance

package acceptance

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteBehindKill9Conflicts: files PUT over WebDAV are acknowledged
// with their links journaled (a 10 s delay), and the node is killed
// with SIGKILL before it makes them. While it is down another node
// removes the folder of one file and writes a newer version of another.
// After `tarn run` again, replay makes the link that still fits, and
// neither undoes the other node's changes nor links into the removed
// folder: those two go to failed-links.jsonl with their reasons, `tarn
// status` counts them, `tarn links` lists them and `tarn links relink`
// links their files (bytes intact) elsewhere and drops their lines.
func TestWriteBehindKill9Conflicts(t *testing.T) {
	g, tgt, n, root := slowLinkWebDAVNode(t)
	cli := func(node *Node, args ...string) Result {
		t.Helper()
		r := tarn(t, CLI{Timeout: 2 * time.Minute}, append(args, "--node", node.Dir)...)
		if r.Code != 0 {
			t.Fatalf("tarn %v: %v", args, r)
		}
		return r
	}
	local := t.TempDir()
	putVia := func(node *Node, p string, data []byte) {
		t.Helper()
		f := filepath.Join(local, "src")
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cli(node, "cp", f, root+":"+p)
	}
	// Made at once, through another client node.
	cli(g.Client, "mkdir", "-p", root+":/wb/gone", root+":/wb/restored")
	putVia(g.Client, "/wb/changed.txt", []byte("the first version"))

	do := func(method, path string, body []byte, want ...int) {
		t.Helper()
		req, err := http.NewRequest(method, tgt.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(tgt.User, tgt.Pass)
		res, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		res.Body.Close()
		for _, w := range want {
			if res.StatusCode == w {
				return
			}
		}
		t.Fatalf("%s %s: %s, want %v", method, path, res.Status, want)
	}
	mine := map[string][]byte{
		"wb/kept.bin":      genBytes(7001, 70_000),
		"wb/changed.txt":   genBytes(7002, 5000),
		"wb/gone/lost.bin": genBytes(7003, 3000),
	}
	start := time.Now()
	for p, data := range mine {
		do("PUT", p, data, http.StatusCreated, http.StatusNoContent)
	}
	answered := time.Since(start)
	g.kill(t, n)
	if answered > 9*time.Second {
		t.Skipf("the PUTs took %v, near the 10 s delay: the links may have been made before the kill", answered)
	}
	// While it is down, another node changes two of the entries.
	cli(g.Client, "rm", "-r", root+":/wb/gone")
	theirs := []byte("their newer version")
	cli(g.Client, "rm", root+":/wb/changed.txt") // cp does not replace
	putVia(g.Client, "/wb/changed.txt", theirs)

	g.restart(t, n)
	type wbStatus struct {
		WriteBehind *struct {
			Pending int `json:"pending"`
			Failed  int `json:"failed_links"`
		} `json:"write_behind"`
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := tarn(t, CLI{Timeout: 40 * time.Second}, "status", "--json", "--node", n.Dir)
		var st wbStatus
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &st) == nil && st.WriteBehind != nil &&
			st.WriteBehind.Pending == 0 && st.WriteBehind.Failed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90 s after the restart the status says %v, want 0 pending and 2 failed links", r.Stdout)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := cli(n, "status"); !strings.Contains(r.Stdout, "2 failed links") {
		t.Fatalf("tarn status does not count the failed links:\n%s", r.Stdout)
	}
	seen, r := lsJSON(t, g.Client, root+":/wb")
	if r.Code != 0 {
		t.Fatal(r)
	}
	if _, ok := seen["gone"]; ok || len(seen) != 3 {
		t.Fatalf("wb after the replay: %v, want kept.bin, changed.txt, restored", seen)
	}
	check := func(p string, want []byte) {
		t.Helper()
		var got bytes.Buffer
		if r := tarn(t, CLI{Stdout: &got, Timeout: time.Minute}, "cat", "--node", g.Client.Dir, root+":"+p); r.Code != 0 {
			t.Fatalf("cat %s: %v", p, r)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s: %d bytes, want the %d expected", p, got.Len(), len(want))
		}
	}
	check("/wb/kept.bin", mine["wb/kept.bin"])
	check("/wb/changed.txt", theirs) // not undone by the replay

	list := cli(n, "links").Stdout
	for _, want := range []string{"/wb/gone/lost.bin", "folder no longer at its path", "/wb/changed.txt", "changed by another node"} {
		if !strings.Contains(list, want) {
			t.Fatalf("tarn links lacks %q:\n%s", want, list)
		}
	}
	out := cli(n, "links", "relink", "--all", "--to", root+":/wb/restored").Stdout
	if strings.Count(out, "linked at") != 2 {
		t.Fatalf("tarn links relink:\n%s", out)
	}
	check("/wb/restored/lost.bin", mine["wb/gone/lost.bin"])
	check("/wb/restored/changed.txt", mine["wb/changed.txt"])
	if list := cli(n, "links").Stdout; !strings.Contains(list, "no failed links") {
		t.Fatalf("failed links left after relinking them:\n%s", list)
	}
	log := g.logText(n)
	for _, want := range []string{"replaying links journaled before the last stop", "could not be made"} {
		if !strings.Contains(log, want) {
			t.Fatalf("the node's log lacks %q:\n%s", want, tail(log, 4000))
		}
	}
}
