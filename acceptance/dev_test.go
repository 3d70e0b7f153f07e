//go:build acceptance

package acceptance

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDevStopStart: Ctrl-C (SIGINT to the process group) stops every
// process of `tarn dev` cleanly, and running it again on the same folder
// keeps the stored files readable.
func TestDevStopStart(t *testing.T) {
	if !haveDev() {
		t.Skip("this tarn has no dev command")
	}
	dir := t.TempDir()
	g := startGrid(t, GridOptions{Dir: dir})
	data := genBytes(800, 5<<20+3)
	c := g.mustPut(t, g.Client, bytes.NewReader(data))

	below := descendants(g.dev.Pid())
	if len(below) < len(g.Nodes) {
		t.Fatalf("%d processes below tarn dev, want at least the %d nodes", len(below), len(g.Nodes))
	}
	start := time.Now()
	syscall.Kill(-g.dev.Pid(), syscall.SIGINT)
	err, ok := g.dev.Wait(30 * time.Second)
	if !ok {
		t.Fatalf("tarn dev still running 30s after Ctrl-C")
	}
	if err != nil {
		b, _ := os.ReadFile(g.dev.Log)
		t.Errorf("tarn dev exited with %v after Ctrl-C:\n%s", err, tail(string(b), 2000))
	}
	if left := waitGone(pidsOf(below), 5*time.Second); len(left) > 0 {
		t.Errorf("processes of tarn dev still alive after it exited: %v", left)
	}
	figure(t, "tarn dev stopped %d processes on Ctrl-C in %v", len(below), time.Since(start).Round(time.Millisecond))
	for _, n := range g.Nodes {
		if _, err := os.Stat(filepath.Join(n.Dir, "node.json")); err == nil {
			t.Errorf("%s: node.json left after a clean stop", n.Name)
		}
	}

	// Run again: endpoints.json appears once the client sees every
	// storage node, and the endpoints are printed.
	g2 := startDevGrid(t, GridOptions{Dir: dir})
	if st, r := g2.status(t, g2.Client); r.Code != 0 || st.Known != 5 || st.Conn != 5 {
		t.Errorf("when endpoints.json appeared the client saw %d servers (%d connected), want 5: %v", st.Known, st.Conn, r)
	}
	printed, _ := os.ReadFile(g2.dev.Log)
	for _, want := range []string{g2.Introducer, g2.Client.Dir, "storage-5"} {
		if !bytes.Contains(printed, []byte(want)) {
			t.Errorf("tarn dev did not print %q:\n%s", want, printed)
		}
	}
	var out bytes.Buffer
	if r := g2.get(t, g2.Client, c, &out); r.Code != 0 || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("after tarn dev ran again on %s: get gave %d bytes: %v", dir, out.Len(), r)
	}
}
