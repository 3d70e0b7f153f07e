package sftp

import (
	"bytes"
	"os/exec"
	"testing"
)

// TestSpoolFull: with the spool on a 1 MiB file system, a 3 MiB upload
// fails with an error (the fast path's write fails, pkg/sftp's run of it
// answers the error), the session goes on, a small upload after it
// works, and nothing of the failed file is linked: its close fails and the file
// keeps its old content. The
// close linked the cut spool (1 MiB) and answered OK, replacing any file
// at the path. Needs root (mount).
func TestSpoolFull(t *testing.T) {
	e := newEnv(t, envOptions{})
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", e.spool).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small spool: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", e.spool).Run() })
	old := []byte("the file as it was")
	e.put(e.drive("alice"), "/big.bin", old)
	c := e.client("alice", alicePW)
	f, err := c.Create("/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(pseudo(1, 3<<20))
	cerr := f.Close()
	t.Logf("write: %v; close: %v", werr, cerr)
	if werr == nil || cerr == nil {
		t.Fatalf("a 3 MiB upload into a 1 MiB spool: write %v, close %v; want both to fail", werr, cerr)
	}
	small := pseudo(2, 100000)
	g, err := c.Create("/small.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write(small); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := e.get(e.drive("alice"), "/small.bin"); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small file after the full spool: %d bytes (%v)", len(got), err)
	}
	if got, err := e.get(e.drive("alice"), "/big.bin"); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("the file after the failed upload: %d bytes (%v), want the old %d", len(got), err, len(old))
	}
}
