package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/vdrive"
	"github.com/tarnfs/tarn/host/vdrive/vdrivetest"
)

// TestCpOverLongName: tarn cp writes over an existing file whose name is
// over 255 bytes (an older version's, set here straight through the
// directory format) in place; a new name that long is still refused
// before any upload, in one line.
func TestCpOverLongName(t *testing.T) {
	bin := buildTarn(t)
	dir, _, gc := checkNode(t)
	ctx := context.Background()
	st := vdrive.GridStore(gc)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := aliases.Add(aliases.File(dir), "home", root.String()); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("L", 300)
	if err := vdrivetest.PlantFile(ctx, st, root.String(), long, []byte("old")); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "new")
	if err := os.WriteFile(src, []byte("new content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "cp", "-q", "--node", dir, src, "home:"+long).CombinedOutput(); err != nil {
		t.Fatalf("cp over the %d-byte name: %v\n%s", len(long), err, out)
	}
	got, err := exec.Command(bin, "cat", "--node", dir, "home:"+long).Output()
	if err != nil || string(got) != "new content" {
		t.Fatalf("cat: %q %v", got, err)
	}
	out, err := exec.Command(bin, "cp", "-q", "--node", dir, src, "home:"+strings.Repeat("N", 300)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "name too long") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("cp to a new 300-byte name: %v\n%s", err, out)
	}
}
