package chk

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// hangSource holds every read of the shares in hang until the read's
// context ends.
type hangSource struct {
	src  ShareSource
	hang atomic.Pointer[map[int]bool]
}

func (h *hangSource) ReadAt(ctx context.Context, s int, p []byte, off int64) (int, error) {
	if m := h.hang.Load(); m != nil && (*m)[s] {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return h.src.ReadAt(ctx, s, p, off)
}

// TestCancelledReadBlamesNoShare: a read whose caller's context ends
// while the shares are being read marks none of them bad, so the same
// decoder reads on afterwards (the grid's range cache lends one decoder
// to many reads); a share that outlasts Options.ReadTimeout is the
// share's problem and is reported.
func TestCancelledReadBlamesNoShare(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	data := content(10*4096, 7)
	c, m := encode(t, p, testKey(3), data)
	src := &hangSource{src: m}
	d, err := NewDecoder(context.Background(), c, rs, src, &Options{ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	all := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}
	src.hang.Store(&all)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	buf := make([]byte, 100)
	if _, err := d.ReadAtContext(ctx, buf, 5*4096); err == nil {
		t.Fatal("a read whose context was cancelled succeeded")
	}
	if ps := d.Problems(); len(ps) != 0 {
		t.Fatalf("a cancelled read reported share problems: %v", ps)
	}
	src.hang.Store(nil)
	if _, err := d.ReadAtContext(context.Background(), buf, 5*4096); err != nil || !bytes.Equal(buf, data[5*4096:][:100]) {
		t.Fatalf("read after a cancelled one: %v", err)
	}

	// A share slower than ReadTimeout: reported, the read served by others.
	d, err = NewDecoder(context.Background(), c, rs, src, &Options{ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	slow := map[int]bool{0: true}
	src.hang.Store(&slow)
	if _, err := d.ReadAtContext(context.Background(), buf, 2*4096); err != nil || !bytes.Equal(buf, data[2*4096:][:100]) {
		t.Fatalf("read with share 0 hung: %v", err)
	}
	ps := d.Problems()
	if len(ps) == 0 || ps[0].Share != 0 {
		t.Fatalf("problems %v, want share 0's timeout", ps)
	}
}
