package vdrive_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestRemoveDirWhileWriting: a folder with a file being written into it
// (a Writer open, a Put still uploading) is not empty, so a Remove of it
// fails with ErrNotEmpty instead of succeeding and leaving the file to be
// linked, at its close, into a folder no path reaches. Once the file is
// closed (or aborted) the folder is what its entries say.
func TestRemoveDirWhileWriting(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g, vdrive.WithDirCache(time.Second))
	ctx := ctxFor(t, time.Minute)
	for _, dir := range []string{"/a", "/b", "/c"} {
		if err := d.Mkdir(ctx, dir); err != nil {
			t.Fatal(err)
		}
	}

	w, err := d.Create(ctx, "/a/f")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("being written"))
	if err := d.Remove(ctx, "/a"); !errors.Is(err, vdrive.ErrNotEmpty) {
		t.Fatalf("remove of a folder with a file open in it: %v, want ErrNotEmpty", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "/a/f"); err != nil {
		t.Fatalf("the file written meanwhile: %v", err)
	}

	// An aborted writer no longer counts.
	w, err = d.Create(ctx, "/b/f")
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if err := d.Remove(ctx, "/b"); err != nil {
		t.Fatalf("remove after the only writer aborted: %v", err)
	}

	// A Put whose body is still arriving counts until it is linked.
	pr, pw := io.Pipe()
	reading := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Put(ctx, "/c/f", &firstRead{r: pr, c: reading}, -1, nil) }()
	go pw.Write(bytes.Repeat([]byte("x"), 1000))
	<-reading // the upload has begun
	if err := d.Remove(ctx, "/c"); !errors.Is(err, vdrive.ErrNotEmpty) {
		t.Fatalf("remove of a folder a Put is writing into: %v, want ErrNotEmpty", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "/c/f"); err != nil {
		t.Fatalf("the file put meanwhile: %v", err)
	}
}

// firstRead closes c at its first Read.
type firstRead struct {
	r    io.Reader
	c    chan struct{}
	once bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	if !f.once {
		f.once = true
		close(f.c)
	}
	return f.r.Read(p)
}
