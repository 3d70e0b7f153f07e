package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/dirnode"
	"github.com/tarnfs/tarn/host/vdrive"
)

type noChunks struct{}

func (noChunks) Put(context.Context, []byte) (string, error) { return "", errors.New("no chunks here") }
func (noChunks) Get(context.Context, string) ([]byte, error) {
	return nil, errors.New("no chunks here")
}

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
	old, err := st.Upload(ctx, bytes.NewReader([]byte("old")), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := root
	rk, wk := w.ReadCap().Slot.ReadKey, w.Slot.WriteKey()
	keys := dirnode.NewKeys(rk[:], wk[:])
	if err := st.Modify(ctx, w.Slot, func(b []byte) ([]byte, error) {
		return dirnode.Edit(ctx, b, keys, noChunks{}, nil, dirnode.Limits{}, func(tx *dirnode.Tx) error {
			return tx.Set(long, old.String(), "", dirnode.Metadata{Type: dirnode.TypeFile, Size: 3})
		})
	}); err != nil {
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
