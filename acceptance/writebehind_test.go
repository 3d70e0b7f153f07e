//go:build acceptance

package acceptance

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteBehindKill9: files PUT over WebDAV are answered once their
// links are journaled on the client node's disk (client.link_write_behind,
// docs/webdav.md). The node is killed with SIGKILL right after the last
// answer, before it links them (a 10 s delay); after `tarn run` again,
// every file is in its folder with its bytes, as another node sees it.
func TestWriteBehindKill9(t *testing.T) {
	g, tgt, n, root := slowLinkWebDAVNode(t)

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
	do("MKCOL", "wb/", nil, http.StatusCreated)
	// Before: a file there already, replaced by the PUTs below.
	do("PUT", "wb/replaced.txt", []byte("old bytes"), http.StatusCreated)
	time.Sleep(11 * time.Second) // linked by now (delay 10 s)

	want := map[string][]byte{"replaced.txt": []byte("new bytes, put last")}
	sizes := []int64{0, 1, 4096, 4096, 56, 70_000, 300_000, 4096}
	for i := range 24 {
		want[fmt.Sprintf("f%02d.bin", i)] = genBytes(uint64(1000+i), sizes[i%len(sizes)])
	}
	start := time.Now()
	for name, data := range want {
		do("PUT", "wb/"+name, data, http.StatusCreated, http.StatusNoContent)
		do("PROPFIND", "wb/"+name, nil, http.StatusMultiStatus) // rclone's check after each file
	}
	answered := time.Since(start)
	g.kill(t, n)
	t.Logf("%d PUTs answered in %v, then kill -9", len(want), answered.Round(time.Millisecond))
	if answered > 9*time.Second {
		t.Skipf("the PUTs took %v, near the 10 s delay: the links may have been made before the kill", answered)
	}

	// The links were not made before the kill: another node sees only
	// the old file.
	seen, r := lsJSON(t, g.Client, root+"/wb")
	if r.Code != 0 {
		t.Fatalf("ls wb through another node: %v", r)
	}
	if len(seen) != 1 {
		t.Fatalf("another node saw %d entries before the restart, want 1 (the links were pending): %v", len(seen), seen)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "links-journal.log")); err != nil {
		t.Fatalf("no link journal in the node folder: %v", err)
	}

	g.restart(t, n)
	deadline := time.Now().Add(90 * time.Second)
	for {
		seen, r = lsJSON(t, g.Client, root+"/wb")
		if r.Code == 0 && len(seen) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90 s after the restart another node lists %d of %d files in wb: %v", len(seen), len(want), r)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for name, data := range want {
		c, ok := seen[name]
		if !ok {
			t.Fatalf("%s is not in wb after the restart", name)
		}
		var got bytes.Buffer
		if r := g.get(t, g.Client, c, &got); r.Code != 0 {
			t.Fatalf("get %s (%s): %v", name, c, r)
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("%s: %d bytes back, want the %d put", name, got.Len(), len(data))
		}
	}
	if log := g.logText(n); strings.Contains(log, "could not be made") {
		t.Fatalf("the node logged a failed link:\n%s", tail(log, 4000))
	}
}

// slowLinkWebDAVNode starts a grid and a WebDAV node run by `tarn run`
// with client.link_write_behind = "10s" (a long delay, so that a kill
// surely comes before the links are made), and returns the node and its
// WebDAV root cap.
func slowLinkWebDAVNode(t *testing.T) (*Grid, *davTarget, *Node, string) {
	t.Helper()
	g := startGrid(t, GridOptions{})
	tgt := startWebDAVNode(t, g)
	if tgt.How != "tarn run" {
		t.Fatalf("the WebDAV node runs as %q; the test needs tarn run to kill it", tgt.How)
	}
	n := tgt.Node
	n.proc.Stop(t, 10*time.Second)
	prof := filepath.Join(n.Dir, "tarn.toml")
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prof, []byte(setTOML(string(b), "client", "link_write_behind", `"10s"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.restart(t, n)
	if !answers(tgt.URL, 30*time.Second) {
		t.Fatalf("WebDAV at %s does not answer after the restart", tgt.URL)
	}
	rootCap, err := os.ReadFile(filepath.Join(n.Dir, "private", "dav-root.cap"))
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(rootCap))
	return g, tgt, n, root
}
