// Package storagetest is the conformance suite of the storage-backend
// contract. Every backend, built in or third party, in process or behind a
// plugin process, runs it:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend { return mybackend.New(t.TempDir()) })
//	}
//
// newBackend must return an empty backend; the suite uses one per subtest.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// Run runs every conformance test against fresh backends from newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnsealedInvisible", testUnsealedInvisible},
		{"CreateExists", testCreateExists},
		{"SealRace", testSealRace},
		{"WriteRange", testWriteRange},
		{"WriteClosed", testWriteClosed},
		{"ReadEOF", testReadEOF},
		{"Holes", testHoles},
		{"ZeroSize", testZeroSize},
		{"Large", testLarge},
		{"RefsDistinct", testRefsDistinct},
		{"Delete", testDelete},
		{"Slots", testSlots},
		{"SlotLarge", testSlotLarge},
		{"SlotRace", testSlotRace},
		{"ListSlots", testListSlots},
		{"ConcurrentShares", testConcurrentShares},
		{"Space", testSpace},
		{"Indexes", testIndexes},
		{"Put", testPut},
		{"PutBatch", testPutBatch},
		{"Open", testOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ref returns a Ref whose index is derived from seed.
func ref(seed byte, num uint32) storage.Ref {
	var r storage.Ref
	for i := range r.Index {
		r.Index[i] = seed ^ byte(i*37)
	}
	r.Num = num
	return r
}

func data(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// put creates, writes in chunks of step bytes, and seals a share.
func put(t *testing.T, b storage.Backend, r storage.Ref, p []byte, step int) {
	t.Helper()
	ctx := ctxT(t)
	w, err := b.Create(ctx, r, int64(len(p)))
	if err != nil {
		t.Fatalf("create %s: %v", r, err)
	}
	for off := 0; off < len(p); off += step {
		end := min(off+step, len(p))
		if err := w.WriteAt(ctx, p[off:end], int64(off)); err != nil {
			t.Fatalf("write %s at %d: %v", r, off, err)
		}
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatalf("seal %s: %v", r, err)
	}
}

// get reads a whole sealed share back, checking Stat agrees.
func get(t *testing.T, b storage.Backend, r storage.Ref) []byte {
	t.Helper()
	ctx := ctxT(t)
	n, err := b.Stat(ctx, r)
	if err != nil {
		t.Fatalf("stat %s: %v", r, err)
	}
	p := make([]byte, n)
	got, err := b.ReadAt(ctx, r, p, 0)
	if err != nil && !(errors.Is(err, io.EOF) && got == len(p)) {
		t.Fatalf("read %s: %d bytes, %v", r, got, err)
	}
	if got != len(p) {
		t.Fatalf("read %s: %d bytes, want %d", r, got, len(p))
	}
	return p
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testRoundTrip(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(1, 3)
	p := data(100_000, 1)
	// Written back to front, in odd-sized pieces, to show offsets are honoured.
	w, err := b.Create(ctx, r, int64(len(p)))
	if err != nil {
		t.Fatal(err)
	}
	for off := len(p); off > 0; {
		start := max(0, off-7919)
		if err := w.WriteAt(ctx, p[start:off], int64(start)); err != nil {
			t.Fatalf("write at %d: %v", start, err)
		}
		off = start
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, r); !bytes.Equal(got, p) {
		t.Fatal("share read back differs from what was written")
	}
	part := make([]byte, 1000)
	if n, err := b.ReadAt(ctx, r, part, 12345); err != nil || n != len(part) || !bytes.Equal(part, p[12345:13345]) {
		t.Fatalf("range read: n=%d err=%v equal=%v", n, err, bytes.Equal(part, p[12345:13345]))
	}
	nums, err := b.List(ctx, r.Index)
	if err != nil || !slices.Equal(nums, []uint32{3}) {
		t.Fatalf("list = %v, %v; want [3]", nums, err)
	}
	other, err := b.List(ctx, ref(99, 0).Index)
	if err != nil || len(other) != 0 {
		t.Fatalf("list of unknown index = %v, %v; want empty", other, err)
	}
}

func testUnsealedInvisible(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(2, 0)
	w, err := b.Create(ctx, r, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, []byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if nums, err := b.List(ctx, r.Index); err != nil || len(nums) != 0 {
			t.Fatalf("%s: list = %v, %v; want empty", when, nums, err)
		}
		_, err := b.Stat(ctx, r)
		wantErr(t, when+": stat", err, storage.ErrNotFound)
		_, err = b.ReadAt(ctx, r, make([]byte, 1), 0)
		wantErr(t, when+": read", err, storage.ErrNotFound)
		wantErr(t, when+": delete", b.Delete(ctx, r), storage.ErrNotFound)
	}
	check("before seal")
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	check("after abort")
	put(t, b, r, []byte("fresh"), 5)
	if got := get(t, b, r); string(got) != "fresh" {
		t.Fatalf("after abort and a new create: read %q", got)
	}
}

func testCreateExists(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(3, 1)
	put(t, b, r, []byte("first"), 5)
	_, err := b.Create(ctx, r, 5)
	wantErr(t, "create over a sealed share", err, storage.ErrExists)
	if got := get(t, b, r); string(got) != "first" {
		t.Fatalf("sealed share changed to %q", got)
	}
}

// testSealRace: two writers of one ref; the first Seal wins and the second
// gets ErrExists, never a mix of both.
func testSealRace(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(4, 2)
	w1, err := b.Create(ctx, r, 3)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := b.Create(ctx, r, 3)
	if err != nil {
		t.Skipf("backend refuses a second writer of an unsealed share: %v", err)
	}
	if err := w1.WriteAt(ctx, []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w2.WriteAt(ctx, []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w1.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "second seal", w2.Seal(ctx), storage.ErrExists)
	if got := get(t, b, r); string(got) != "one" {
		t.Fatalf("read %q, want the first sealed value", got)
	}
}

func testWriteRange(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	w, err := b.Create(ctx, ref(5, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(ctx)
	for _, tc := range []struct {
		name string
		off  int64
		n    int
	}{
		{"past end", 5, 6},
		{"at end", 10, 1},
		{"far past end", 1 << 40, 1},
		{"negative offset", -1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "write", w.WriteAt(ctx, make([]byte, tc.n), tc.off), storage.ErrRange)
		})
	}
	if err := w.WriteAt(ctx, make([]byte, 10), 0); err != nil {
		t.Fatalf("a write filling the share exactly: %v", err)
	}
	_, err = b.Create(ctx, ref(5, 1), -1)
	wantErr(t, "create of negative size", err, storage.ErrRange)
}

func testWriteClosed(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		end  func(w storage.Writer) error
	}{
		{"sealed", func(w storage.Writer) error { return w.Seal(ctx) }},
		{"aborted", func(w storage.Writer) error { return w.Abort(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ref(6, uint32(len(tc.name)))
			w, err := b.Create(ctx, r, 4)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteAt(ctx, []byte("abcd"), 0); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(w); err != nil {
				t.Fatal(err)
			}
			wantErr(t, "write", w.WriteAt(ctx, []byte("x"), 0), storage.ErrClosed)
			wantErr(t, "seal", w.Seal(ctx), storage.ErrClosed)
			wantErr(t, "abort", w.Abort(ctx), storage.ErrClosed)
		})
	}
	if got := get(t, b, ref(6, uint32(len("sealed")))); string(got) != "abcd" {
		t.Fatalf("sealed share reads %q after a refused late write", got)
	}
}

func testReadEOF(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(7, 0)
	p := data(1000, 7)
	put(t, b, r, p, 1000)
	for _, tc := range []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantErr error
	}{
		{"whole", 0, 1000, 1000, nil},
		{"middle", 100, 50, 50, nil},
		{"up to end", 900, 100, 100, nil},
		{"over end", 900, 200, 100, io.EOF},
		{"at end", 1000, 10, 0, io.EOF},
		{"past end", 5000, 10, 0, io.EOF},
		{"negative", -1, 10, 0, storage.ErrRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.n)
			n, err := b.ReadAt(ctx, r, buf, tc.off)
			if tc.wantErr == nil && err != nil && !(errors.Is(err, io.EOF) && n == tc.n) {
				t.Fatalf("read: %v", err)
			}
			if tc.wantErr != nil {
				wantErr(t, "read", err, tc.wantErr)
			}
			if n != tc.wantN {
				t.Fatalf("read %d bytes, want %d", n, tc.wantN)
			}
			if n > 0 && !bytes.Equal(buf[:n], p[tc.off:tc.off+int64(n)]) {
				t.Fatal("read the wrong bytes")
			}
		})
	}
}

// testHoles: sealing a share whose bytes were not all written is allowed;
// the unwritten bytes read as zeros (the contract's choice, see
// docs/plugins-storage.md).
func testHoles(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(8, 0)
	w, err := b.Create(ctx, r, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, []byte("data"), 50); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatalf("seal with holes: %v", err)
	}
	want := make([]byte, 100)
	copy(want[50:], "data")
	if got := get(t, b, r); !bytes.Equal(got, want) {
		t.Fatalf("share with holes reads %q", got)
	}
}

func testZeroSize(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(9, 4)
	put(t, b, r, nil, 1)
	if n, err := b.Stat(ctx, r); err != nil || n != 0 {
		t.Fatalf("stat = %d, %v; want 0", n, err)
	}
	n, err := b.ReadAt(ctx, r, make([]byte, 1), 0)
	if n != 0 {
		t.Fatalf("read %d bytes of an empty share", n)
	}
	wantErr(t, "read of an empty share", err, io.EOF)
	if nums, err := b.List(ctx, r.Index); err != nil || !slices.Equal(nums, []uint32{4}) {
		t.Fatalf("list = %v, %v", nums, err)
	}
}

// testLarge moves a share bigger than gRPC's default 4 MiB message limit in
// one WriteAt and one ReadAt, so a plugin transport must chunk.
func testLarge(t *testing.T, b storage.Backend) {
	r := ref(10, 0)
	p := data(9<<20+123, 10)
	put(t, b, r, p, len(p))
	if got := get(t, b, r); !bytes.Equal(got, p) {
		t.Fatal("large share read back differs")
	}
}

func testRefsDistinct(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	refs := []storage.Ref{ref(11, 0), ref(11, 1), ref(12, 0), ref(11, 0xffffffff)}
	for i, r := range refs {
		put(t, b, r, []byte(fmt.Sprintf("share %d", i)), 100)
	}
	for i, r := range refs {
		if got := get(t, b, r); string(got) != fmt.Sprintf("share %d", i) {
			t.Fatalf("%s reads %q", r, got)
		}
	}
	nums, err := b.List(ctx, ref(11, 0).Index)
	if err != nil || !slices.Equal(nums, []uint32{0, 1, 0xffffffff}) {
		t.Fatalf("list = %v, %v; want [0 1 4294967295] sorted", nums, err)
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(13, 0)
	put(t, b, r, []byte("gone soon"), 100)
	put(t, b, ref(13, 1), []byte("stays"), 100)
	if err := b.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	_, err := b.Stat(ctx, r)
	wantErr(t, "stat after delete", err, storage.ErrNotFound)
	_, err = b.ReadAt(ctx, r, make([]byte, 1), 0)
	wantErr(t, "read after delete", err, storage.ErrNotFound)
	wantErr(t, "second delete", b.Delete(ctx, r), storage.ErrNotFound)
	if nums, err := b.List(ctx, r.Index); err != nil || !slices.Equal(nums, []uint32{1}) {
		t.Fatalf("list after delete = %v, %v", nums, err)
	}
	put(t, b, r, []byte("back"), 100)
	if got := get(t, b, r); string(got) != "back" {
		t.Fatalf("recreated share reads %q", got)
	}
}

func testSlots(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(14, 0)
	_, _, err := b.ReadSlot(ctx, r)
	wantErr(t, "read of a missing slot", err, storage.ErrNotFound)
	_, err = b.WriteSlot(ctx, r, "no-such-token", []byte("x"))
	wantErr(t, "write of a missing slot with a token", err, storage.ErrConflict)

	t1, err := b.WriteSlot(ctx, r, "", []byte("v1"))
	if err != nil || t1 == "" {
		t.Fatalf("create slot: token %q, %v", t1, err)
	}
	_, err = b.WriteSlot(ctx, r, "", []byte("again"))
	wantErr(t, "second create", err, storage.ErrConflict)
	v, tok, err := b.ReadSlot(ctx, r)
	if err != nil || string(v) != "v1" || tok != t1 {
		t.Fatalf("read slot = %q %q %v; want v1 %q", v, tok, err, t1)
	}
	t2, err := b.WriteSlot(ctx, r, t1, []byte("v2"))
	if err != nil || t2 == t1 || t2 == "" {
		t.Fatalf("update: token %q (old %q), %v", t2, t1, err)
	}
	_, err = b.WriteSlot(ctx, r, t1, []byte("lost update"))
	wantErr(t, "write with a stale token", err, storage.ErrConflict)
	// Writing the same bytes again still moves the token on.
	t3, err := b.WriteSlot(ctx, r, t2, []byte("v2"))
	if err != nil || t3 == t2 {
		t.Fatalf("rewrite of the same value: token %q (old %q), %v", t3, t2, err)
	}
	t4, err := b.WriteSlot(ctx, r, t3, nil)
	if err != nil {
		t.Fatalf("write of an empty value: %v", err)
	}
	if v, tok, err := b.ReadSlot(ctx, r); err != nil || len(v) != 0 || tok != t4 {
		t.Fatalf("read of an empty value = %q %q %v", v, tok, err)
	}
	// Slots and shares of the same ref are separate.
	if _, err := b.Stat(ctx, r); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a slot shows up as a share: %v", err)
	}
	if _, _, err := b.ReadSlot(ctx, ref(14, 1)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another slot number reads: %v", err)
	}
}

func testSlotLarge(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(15, 0)
	p := data(6<<20+7, 15)
	tok, err := b.WriteSlot(ctx, r, "", p)
	if err != nil {
		t.Fatal(err)
	}
	v, tok2, err := b.ReadSlot(ctx, r)
	if err != nil || tok2 != tok || !bytes.Equal(v, p) {
		t.Fatalf("large slot: token %q want %q, equal %v, %v", tok2, tok, bytes.Equal(v, p), err)
	}
}

// testSlotRace: writers that all read the same token race; exactly one wins.
func testSlotRace(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	r := ref(16, 0)
	tok, err := b.WriteSlot(ctx, r, "", []byte("start"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = b.WriteSlot(ctx, r, tok, []byte(fmt.Sprintf("writer %d", i)))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("writer %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	v, _, err := b.ReadSlot(ctx, r)
	if err != nil || string(v) != fmt.Sprintf("writer %d", winner) {
		t.Fatalf("slot holds %q, %v; want the winner's value", v, err)
	}
}

// testListSlots: ListSlots names exactly the slots of one index, sorted,
// apart from shares and from other indexes.
func testListSlots(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	idx := ref(17, 0).Index
	tests := []struct {
		name  string
		write []uint32 // slots created before listing
		want  []uint32
	}{
		{"unknown index", nil, []uint32{}},
		{"one slot", []uint32{3}, []uint32{3}},
		{"out of order", []uint32{200, 0, 7}, []uint32{0, 3, 7, 200}},
		{"rewrite adds nothing", []uint32{3}, []uint32{0, 3, 7, 200}},
		{"top number", []uint32{255}, []uint32{0, 3, 7, 200, 255}},
	}
	toks := map[uint32]string{}
	for _, tc := range tests {
		for _, n := range tc.write {
			r := storage.Ref{Index: idx, Num: n}
			tok, err := b.WriteSlot(ctx, r, toks[n], []byte(fmt.Sprintf("slot %d", n)))
			if err != nil {
				t.Fatalf("%s: write slot %d: %v", tc.name, n, err)
			}
			toks[n] = tok
		}
		got, err := b.ListSlots(ctx, idx)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got == nil || !slices.Equal(got, tc.want) {
			t.Fatalf("%s: ListSlots = %v, want %v", tc.name, got, tc.want)
		}
	}
	// An empty value is a slot too.
	other := ref(18, 9)
	if _, err := b.WriteSlot(ctx, other, "", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ListSlots(ctx, other.Index); err != nil || !slices.Equal(got, []uint32{9}) {
		t.Fatalf("ListSlots of an index with one empty slot = %v, %v; want [9]", got, err)
	}
	// Shares and slots of one index are listed apart.
	put(t, b, storage.Ref{Index: idx, Num: 5}, []byte("share"), 5)
	if got, err := b.List(ctx, idx); err != nil || !slices.Equal(got, []uint32{5}) {
		t.Fatalf("List beside slots = %v, %v; want [5]", got, err)
	}
	if got, err := b.ListSlots(ctx, idx); err != nil || !slices.Equal(got, []uint32{0, 3, 7, 200, 255}) {
		t.Fatalf("ListSlots beside a share = %v, %v", got, err)
	}
	// An unsealed share is not a slot either.
	w, err := b.Create(ctx, ref(19, 1), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(ctx)
	if got, err := b.ListSlots(ctx, ref(19, 1).Index); err != nil || len(got) != 0 {
		t.Fatalf("ListSlots of an index with only an open writer = %v, %v", got, err)
	}
}

func testConcurrentShares(t *testing.T, b storage.Backend) {
	const workers, each = 8, 8
	var wg sync.WaitGroup
	failed := make(chan string, workers*each)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range each {
				r := ref(byte(100+g), uint32(i))
				p := data(20_000+i, uint64(g*each+i))
				w, err := b.Create(ctx, r, int64(len(p)))
				if err == nil {
					err = w.WriteAt(ctx, p, 0)
				}
				if err == nil {
					err = w.Seal(ctx)
				}
				if err != nil {
					failed <- fmt.Sprintf("put %s: %v", r, err)
					return
				}
				got := make([]byte, len(p))
				if n, err := b.ReadAt(ctx, r, got, 0); err != nil || n != len(p) || !bytes.Equal(got, p) {
					failed <- fmt.Sprintf("read %s: n=%d %v", r, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failed)
	for f := range failed {
		t.Error(f)
	}
	ctx := ctxT(t)
	for g := range workers {
		nums, err := b.List(ctx, ref(byte(100+g), 0).Index)
		if err != nil || !slices.Equal(nums, []uint32{0, 1, 2, 3, 4, 5, 6, 7}) {
			t.Errorf("list of worker %d = %v, %v", g, nums, err)
		}
	}
}

func testSpace(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	sp, err := b.Space(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Total <= 0 || sp.Free < 0 || sp.Free > sp.Total {
		t.Fatalf("space %+v is not sane", sp)
	}
	_, err = b.Create(ctx, ref(17, 0), sp.Free+1<<40)
	wantErr(t, "create bigger than the free space", err, storage.ErrNoSpace)
}

func testIndexes(t *testing.T, b storage.Backend) {
	ix, ok := b.(storage.Indexer)
	if !ok {
		t.Skip("backend does not implement storage.Indexer")
	}
	ctx := ctxT(t)
	want := map[[storage.StorageIndexSize]byte]bool{}
	for i := range 5 {
		r := ref(byte(200+i), 0)
		put(t, b, r, []byte("x"), 1)
		want[r.Index] = true
	}
	slot := ref(210, 0)
	if _, err := b.WriteSlot(ctx, slot, "", []byte("s")); err != nil {
		t.Fatal(err)
	}
	want[slot.Index] = true
	got := map[[storage.StorageIndexSize]byte]bool{}
	err := ix.Indexes(ctx, func(idx [storage.StorageIndexSize]byte) error {
		if got[idx] {
			return fmt.Errorf("index %x listed twice", idx)
		}
		got[idx] = true
		return nil
	})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("backend cannot enumerate its indexes")
	}
	if err != nil {
		t.Fatal(err)
	}
	for idx := range want {
		if !got[idx] {
			t.Errorf("index %x missing", idx)
		}
	}
	if len(got) != len(want) {
		t.Errorf("listed %d indexes, want %d", len(got), len(want))
	}
	stop := errors.New("stop")
	if err := ix.Indexes(ctx, func([storage.StorageIndexSize]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("an error from fn is not returned: %v", err)
	}
}

// testPut checks storage.Put, the one-call store of a whole share: with
// the backend's own Put when it is a storage.Putter, else through Create.
func testPut(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	_, isPutter := b.(storage.Putter)
	t.Logf("backend is a storage.Putter: %v", isPutter)
	cases := []struct {
		name string
		ref  storage.Ref
		size int
	}{
		{"small", ref(31, 0), 1500},
		{"empty", ref(31, 1), 0},
		{"other index", ref(32, 0), 70 << 10},
	}
	for _, tc := range cases {
		p := data(tc.size, uint64(tc.size)+7)
		if err := storage.Put(ctx, b, tc.ref, p); err != nil {
			t.Fatalf("%s: put %s: %v", tc.name, tc.ref, err)
		}
		if got := get(t, b, tc.ref); !bytes.Equal(got, p) {
			t.Fatalf("%s: share %s read back other bytes", tc.name, tc.ref)
		}
	}
	nums, err := b.List(ctx, ref(31, 0).Index)
	if err != nil || !slices.Equal(nums, []uint32{0, 1}) {
		t.Fatalf("list after put: %v, %v; want [0 1]", nums, err)
	}
	// A second put of a sealed share is refused and leaves it as it was.
	err = storage.Put(ctx, b, ref(31, 0), data(1500, 99))
	wantErr(t, "put over a sealed share", err, storage.ErrExists)
	if got := get(t, b, ref(31, 0)); !bytes.Equal(got, data(1500, 1507)) {
		t.Fatal("a refused put changed the sealed share")
	}
	// A share created by Create and sealed meanwhile wins too.
	w, err := b.Create(ctx, ref(33, 2), 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, []byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "put over a share sealed by a writer", storage.Put(ctx, b, ref(33, 2), []byte("abcdefghij")), storage.ErrExists)
	// More than the free space is refused and leaves nothing behind.
	sp, err := b.Space(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Free < 64<<20 {
		err = storage.Put(ctx, b, ref(34, 0), make([]byte, sp.Free+1))
		wantErr(t, "put bigger than the free space", err, storage.ErrNoSpace)
		if _, err := b.Stat(ctx, ref(34, 0)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a refused put left a share: stat says %v", err)
		}
	}
	// Concurrent puts of one ref: exactly one wins, the rest see ErrExists.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = storage.Put(ctx, b, ref(35, 4), data(2000, uint64(i)))
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("concurrent put %d: %v, want nil or ErrExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent puts of one share succeeded, want 1", won)
	}
}

// testOpen: a backend that hands out sealed shares' files (storage.Opener)
// gives the sealed bytes and size, ErrNotFound for a missing or unsealed
// share, and a file that still reads after the share is deleted. A
// backend without it, or one that answers ErrUnsupported, skips.
func testOpen(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	o, ok := b.(storage.Opener)
	if !ok {
		t.Skip("backend is not a storage.Opener")
	}
	p := data(300<<10, 41)
	r := ref(41, 3)
	put(t, b, r, p, 64<<10)
	f, size, err := o.Open(ctx, r)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("backend cannot open files here: %v", err)
	}
	if err != nil {
		t.Fatalf("open %s: %v", r, err)
	}
	defer f.Close()
	if size != int64(len(p)) {
		t.Fatalf("open %s: size %d, want %d", r, size, len(p))
	}
	for _, tc := range []struct {
		name    string
		off, n  int
		want    int
		wantEOF bool
	}{
		{"whole", 0, len(p), len(p), false},
		{"middle", 1000, 5000, 5000, false},
		{"over end", len(p) - 10, 20, 10, true},
	} {
		got := make([]byte, tc.n)
		n, err := f.ReadAt(got, int64(tc.off))
		if n != tc.want || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
			t.Fatalf("%s: read %d bytes, %v; want %d, eof %v", tc.name, n, err, tc.want, tc.wantEOF)
		}
		if !bytes.Equal(got[:n], p[tc.off:tc.off+n]) {
			t.Fatalf("%s: other bytes than were sealed", tc.name)
		}
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("an opened share file is writable")
	}
	w, err := b.Create(ctx, ref(41, 4), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(ctx)
	for _, missing := range []storage.Ref{ref(41, 4), ref(42, 0)} {
		if f, _, err := o.Open(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("open of unsealed or missing %s: %v, want ErrNotFound", missing, err)
		}
	}
	if err := b.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(p))
	if n, err := f.ReadAt(got, 0); n != len(p) || !bytes.Equal(got, p) {
		t.Fatalf("read of an open file after Delete: %d bytes, %v", n, err)
	}
}

// testPutBatch checks storage.PutBatch, the one-call store of several
// whole shares: every share stored reads back whole; a share sealed
// already, or given twice, fails alone; shares over the pack limit and
// batches over the byte limit (split into calls) are stored too. A
// storage.BatchPutter refuses a call over the limits and stores nothing
// of it.
func testPutBatch(t *testing.T, b storage.Backend) {
	ctx := ctxT(t)
	bp, isBatch := b.(storage.BatchPutter)
	t.Logf("backend is a storage.BatchPutter: %v", isBatch)
	if err := storage.Put(ctx, b, ref(40, 3), data(900, 1)); err != nil {
		t.Fatal(err)
	}
	var puts []storage.PutItem
	for i := range 8 {
		puts = append(puts, storage.PutItem{Ref: ref(40+byte(i%2), uint32(i)), Data: data(4096+i, uint64(i))})
	}
	puts = append(puts,
		storage.PutItem{Ref: ref(42, 0), Data: nil},               // 8: empty
		storage.PutItem{Ref: ref(42, 1), Data: data(300<<10, 77)}, // 9: over the pack limit
		storage.PutItem{Ref: ref(40, 3), Data: data(900, 2)},      // 10: sealed already
		storage.PutItem{Ref: ref(42, 2), Data: data(100, 3)},      // 11 and 12: one ref twice
		storage.PutItem{Ref: ref(42, 2), Data: data(100, 4)})
	errs := storage.PutBatch(ctx, b, puts)
	if len(errs) != len(puts) {
		t.Fatalf("%d outcomes for %d shares", len(errs), len(puts))
	}
	for i := range 10 {
		if errs[i] != nil {
			t.Fatalf("share %d (%s): %v", i, puts[i].Ref, errs[i])
		}
		if got := get(t, b, puts[i].Ref); !bytes.Equal(got, puts[i].Data) {
			t.Fatalf("share %d (%s) read back other bytes", i, puts[i].Ref)
		}
	}
	wantErr(t, "batched put over a sealed share", errs[10], storage.ErrExists)
	if got := get(t, b, ref(40, 3)); !bytes.Equal(got, data(900, 1)) {
		t.Fatal("a refused batched put changed the sealed share")
	}
	won := 11
	switch {
	case errs[11] == nil && errors.Is(errs[12], storage.ErrExists):
	case errs[12] == nil && errors.Is(errs[11], storage.ErrExists):
		won = 12
	default:
		t.Fatalf("one ref twice in a batch: %v, %v; want one stored, one ErrExists", errs[11], errs[12])
	}
	if got := get(t, b, ref(42, 2)); !bytes.Equal(got, puts[won].Data) {
		t.Fatal("the share given twice holds the bytes of the one refused")
	}
	nums, err := b.List(ctx, ref(40, 0).Index)
	if err != nil || !slices.Equal(nums, []uint32{0, 2, 3, 4, 6}) {
		t.Fatalf("list after batch: %v, %v; want [0 2 3 4 6]", nums, err)
	}
	// Over MaxBatchBytes in all: storage.PutBatch splits it into calls.
	big := []storage.PutItem{
		{Ref: ref(43, 0), Data: data(400<<10, 5)},
		{Ref: ref(43, 1), Data: data(400<<10, 6)},
		{Ref: ref(43, 2), Data: data(400<<10, 7)},
	}
	for i, err := range storage.PutBatch(ctx, b, big) {
		if err != nil {
			t.Fatalf("split batch, share %d: %v", i, err)
		}
		if got := get(t, b, big[i].Ref); !bytes.Equal(got, big[i].Data) {
			t.Fatalf("split batch, share %d read back other bytes", i)
		}
	}
	if !isBatch {
		return
	}
	for _, tc := range []struct {
		name string
		puts []storage.PutItem
	}{
		{"too many", make([]storage.PutItem, storage.MaxBatchPuts+1)},
		{"too many bytes", []storage.PutItem{{Ref: ref(44, 0), Data: make([]byte, 600<<10)}, {Ref: ref(44, 1), Data: make([]byte, 600<<10)}}},
	} {
		for i := range tc.puts {
			tc.puts[i].Ref = ref(44, uint32(i))
		}
		errs, err := bp.PutBatch(ctx, tc.puts)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Logf("%s: the backend does not batch (%v)", tc.name, err)
			continue
		}
		if errs != nil || !errors.Is(err, storage.ErrBatchLimit) {
			t.Fatalf("%s: %d outcomes, error %v; want ErrBatchLimit", tc.name, len(errs), err)
		}
		if _, err := b.Stat(ctx, ref(44, 0)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: a refused batch stored a share (stat: %v)", tc.name, err)
		}
	}
}
