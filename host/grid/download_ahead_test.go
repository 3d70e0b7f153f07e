package grid_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// TestReadAhead: WriteTo reads a share's blocks several segments per call
// (far fewer backend reads than one per block), gives the file's bytes,
// still catches a corrupt block or a share gone since Open and replaces
// that share, and holds no window once it returns.
func TestReadAhead(t *testing.T) {
	const segs = 13
	size := segs*seg - 1000
	for _, tc := range []struct {
		name     string
		damage   string // "", "corrupt", "missing"
		maxReads int64
	}{
		// 3 shares x (the first window + ceil(13/4) block windows), with
		// slack for a window fetched again when a decoder lagged behind
		// (one read per block would be 3 x (1 + 13) = 42).
		{"well", "", 3*(1+4) + 6},
		{"corrupt block in the second window", "corrupt", 40},
		{"share deleted after open", "missing", 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, data, f := openDamaged(t, ctxFor(t, time.Minute), size, tc.damage, 5)
			before := g.Counts().Reads
			var out bytes.Buffer
			if n, err := f.WriteTo(&out); err != nil || n != int64(size) || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("WriteTo: %d bytes, %v; equal %v", n, err, bytes.Equal(out.Bytes(), data))
			}
			if reads := g.Counts().Reads - before; reads > tc.maxReads || reads < 3 {
				t.Fatalf("%d backend reads, want 3 to %d", reads, tc.maxReads)
			}
			// (A share gone is a problem only if the decoder tried it,
			// which depends on which servers answered Open first.)
			if got := len(f.Problems()) > 0; tc.damage != "missing" && got != (tc.damage == "corrupt") {
				t.Fatalf("problems %v with damage %q", f.Problems(), tc.damage)
			}
			if wins, free := grid.AheadCached(f); wins != 0 || free != 0 {
				t.Fatalf("%d windows and %d buffers held after WriteTo", wins, free)
			}
			// And again, now that the damaged share is known.
			out.Reset()
			if _, err := f.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("second WriteTo: %v", err)
			}
		})
	}
}

// cancelWriter cancels the download's context at its first write.
type cancelWriter struct{ cancel context.CancelFunc }

func (w cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	return len(p), nil
}

// TestReadAheadCancel: a download cancelled mid-way returns the context's
// error, and leaves no window, buffer or background fetch behind.
func TestReadAheadCancel(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(40 * seg)
	cp := upload(t, c, data)
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(ctxFor(t, time.Minute))
	f, err := c.Open(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.WriteTo(cancelWriter{cancel})
	if !errors.Is(err, context.Canceled) || n >= int64(len(data)) {
		t.Fatalf("WriteTo cancelled: %d bytes, %v", n, err)
	}
	if wins, free := grid.AheadCached(f); wins != 0 || free != 0 {
		t.Fatalf("%d windows and %d buffers held after a cancelled WriteTo", wins, free)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		t.Fatalf("%d goroutines after the cancelled download, %d before", n, base)
	}
}

// TestReadAheadConcurrent: two WriteTo of one File at once share the
// windows and both give the file's bytes; nothing is held after.
func TestReadAheadConcurrent(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(30*seg + 123)
	f, err := c.Open(ctxFor(t, time.Minute), upload(t, c, data))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			var out bytes.Buffer
			_, err := f.WriteTo(&out)
			if err == nil && !bytes.Equal(out.Bytes(), data) {
				err = errors.New("bytes differ")
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if wins, free := grid.AheadCached(f); wins != 0 || free != 0 {
		t.Fatalf("%d windows and %d buffers held after WriteTo", wins, free)
	}
}
