package storageclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// upload allocates, writes and seals shares whose bytes are data[shnum].
func upload(t *testing.T, c *Client, index [16]byte, data map[uint32][]byte, secret []byte) {
	t.Helper()
	ctx := testCtx(t)
	var nums []uint32
	var size int64
	for n, d := range data {
		nums = append(nums, n)
		size = int64(len(d))
	}
	a, err := c.Allocate(ctx, index, nums, size, secret)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Writers) != len(nums) {
		t.Fatalf("allocated %d writers for %d shares (have %v, in progress %v)", len(a.Writers), len(nums), a.AlreadyHave, a.InProgress)
	}
	for n, w := range a.Writers {
		d := data[n]
		// Write in uneven pieces to exercise buffering.
		for off := 0; off < len(d); {
			k := min(len(d)-off, 1000+off%77777)
			if err := w.WriteAt(ctx, d[off:off+k], int64(off)); err != nil {
				t.Fatal(err)
			}
			off += k
		}
		if err := w.Seal(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	lease := randBytes(32)

	sizes := []struct {
		name string
		size int
	}{{"empty", 0}, {"one byte", 1}, {"chunk", DefaultChunkSize}, {"chunk plus one", DefaultChunkSize + 1}, {"several chunks", 3*DefaultChunkSize + 12345}}
	for _, tc := range sizes {
		t.Run(tc.name, func(t *testing.T) {
			index := randIndex()
			data := map[uint32][]byte{0: randBytes(tc.size), 3: randBytes(tc.size), 7: randBytes(tc.size)}
			upload(t, c, index, data, lease)

			list, err := c.List(ctx, index)
			if err != nil {
				t.Fatal(err)
			}
			want := []ShareInfo{{0, int64(tc.size)}, {3, int64(tc.size)}, {7, int64(tc.size)}}
			if fmt.Sprint(list) != fmt.Sprint(want) {
				t.Fatalf("list = %v, want %v", list, want)
			}
			for n, d := range data {
				got, err := c.Read(ctx, index, n, 0, int64(len(d)))
				if err != nil || !bytes.Equal(got, d) {
					t.Fatalf("read share %d: %d bytes, err %v", n, len(got), err)
				}
			}
			if tc.size < 10 {
				return
			}
			d := data[3]
			rs := []Range{{1, 5}, {int64(tc.size) - 3, 3}, {0, 0}, {int64(tc.size) / 2, int64(tc.size) / 3}, {int64(tc.size) - 2, 10}, {int64(tc.size) + 5, 5}}
			got, err := c.ReadRanges(ctx, index, 3, rs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				end := min(r.Offset+r.Length, int64(tc.size))
				var exp []byte
				if r.Offset < end {
					exp = d[r.Offset:end]
				}
				if !bytes.Equal(got[i], exp) {
					t.Fatalf("range %d %v: got %d bytes, want %d", i, r, len(got[i]), len(exp))
				}
			}
			if _, err := c.Read(ctx, index, 3, int64(tc.size)-2, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short read: %v, want ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestOutOfOrderWrites(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{ChunkSize: 4096})
	ctx := testCtx(t)
	index := randIndex()
	data := randBytes(50000)
	a, err := c.Allocate(ctx, index, []uint32{1}, int64(len(data)), randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	w := a.Writers[1]
	// Body first, then a header at the front, as an uploader writes hash
	// trees after the blocks.
	for _, r := range [][2]int{{100, 30000}, {30000, 50000}, {0, 100}} {
		if err := w.WriteAt(ctx, data[r[0]:r[1]], int64(r[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteAt(ctx, data[:2], int64(len(data)-1)); !errors.Is(err, storage.ErrRange) {
		t.Fatalf("write past size: %v, want ErrRange", err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := c.Read(ctx, index, 1, 0, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if err := w.WriteAt(ctx, data[:1], 0); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("write after seal: %v, want ErrClosed", err)
	}
}

func TestUnsealedNotVisible(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{})
	other := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	index := randIndex()
	lease := randBytes(32)
	a, err := c.Allocate(ctx, index, []uint32{0, 1}, 1000, lease)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Writers[0].WriteAt(ctx, randBytes(1000), 0); err != nil {
		t.Fatal(err)
	}
	// Push the bytes out without sealing.
	if err := a.Writers[0].flush(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := other.List(ctx, index); err != nil || len(l) != 0 {
		t.Fatalf("list while unsealed = %v, %v; want empty", l, err)
	}
	if _, err := other.Read(ctx, index, 0, 0, 10); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("read unsealed: %v, want ErrNotFound", err)
	}
	b, err := other.Allocate(ctx, index, []uint32{0, 1, 2}, 1000, lease)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.InProgress) != "[0 1]" || len(b.Writers) != 1 || b.Writers[2] == nil {
		t.Fatalf("second allocation: in progress %v, writers %d", b.InProgress, len(b.Writers))
	}
	b.Writers[2].Abort(ctx)

	// Aborted: gone, and allocatable again.
	if err := a.Writers[0].Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Writers[1].WriteAt(ctx, randBytes(1000), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Writers[1].Seal(ctx); err != nil {
		t.Fatal(err)
	}
	c2, err := other.Allocate(ctx, index, []uint32{0, 1}, 1000, lease)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c2.AlreadyHave) != "[1]" || c2.Writers[0] == nil {
		t.Fatalf("after abort and seal: have %v, writers %v", c2.AlreadyHave, c2.Writers)
	}
	c2.Writers[0].Abort(ctx)
	// Another node cannot write into my upload.
	if l, _ := other.List(ctx, index); fmt.Sprint(l) != "[{1 1000}]" {
		t.Fatalf("list = %v", l)
	}
}

func TestReservedSpace(t *testing.T) {
	const mib = 1 << 20
	ts := startServer(t, storageserver.Config{Backend: storagememory.NewLimit(10 * mib), Reserved: 4 * mib}, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Available != 6*mib || v.Reserved != 4*mib {
		t.Fatalf("version: available %d reserved %d", v.Available, v.Reserved)
	}
	tests := []struct {
		name   string
		shares []uint32
		size   int64
		ok     bool
	}{
		{"fits exactly", []uint32{0, 1}, 3 * mib, true},
		{"one byte more", []uint32{2}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := c.Allocate(ctx, randIndex(), tc.shares, tc.size, randBytes(32))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(a.Writers) != len(tc.shares) {
					t.Fatalf("writers %d", len(a.Writers))
				}
				return
			}
			if !errors.Is(err, storage.ErrNoSpace) {
				t.Fatalf("err = %v, want ErrNoSpace", err)
			}
			if want := fmt.Sprintf("reserved space: %d free, %d reserved", 4*mib, 4*mib); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q lacks %q", err, want)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name      string
		openReads bool
		secret    string // "right", "wrong", "none"
		readOK    bool
		writeOK   bool
	}{
		{"member", false, "right", true, true},
		{"no proof", false, "none", false, false},
		{"other grid", false, "wrong", false, false},
		{"no proof, open reads", true, "none", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, storageserver.Config{OpenReads: tc.openReads}, false)
			var secret []byte
			switch tc.secret {
			case "right":
				secret = ts.secret
			case "wrong":
				secret = randBytes(32)
			}
			c := ts.dial(t, secret, Options{})
			if _, err := c.Version(ctx); err != nil {
				t.Fatalf("version is open to all: %v", err)
			}
			_, err := c.List(ctx, randIndex())
			if (err == nil) != tc.readOK || (err != nil && !errors.Is(err, nodelink.ErrNotMember)) {
				t.Fatalf("list: %v, want ok=%v or ErrNotMember", err, tc.readOK)
			}
			_, err = c.Allocate(ctx, randIndex(), []uint32{0}, 10, randBytes(32))
			if (err == nil) != tc.writeOK || (err != nil && !errors.Is(err, nodelink.ErrNotMember)) {
				t.Fatalf("allocate: %v, want ok=%v or ErrNotMember", err, tc.writeOK)
			}
			if err != nil && !strings.Contains(err.Error(), "not a member of this grid") {
				t.Fatalf("error %q does not say why", err)
			}
			_, err = c.WriteSlot(ctx, storage.Ref{Index: randIndex()}, "", []byte("x"), randBytes(32))
			if (err == nil) != tc.writeOK {
				t.Fatalf("write slot: %v, want ok=%v", err, tc.writeOK)
			}
		})
	}
}

func TestPinnedServerKey(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	impostor := startServer(t, storageserver.Config{GridSecret: ts.secret}, false)
	a, _ := nodelink.ParseAddr(impostor.addr)
	a.KeyHash = pinOf(t, ts.cert)
	_, err := Dial(testCtx(t), tcp, a.String(), newCert(t), Options{GridSecret: ts.secret})
	if !errors.Is(err, nodelink.ErrKeyMismatch) {
		t.Fatalf("dial impostor: %v, want ErrKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), "expected "+pinOf(t, ts.cert)) || !strings.Contains(err.Error(), "actual "+pinOf(t, impostor.cert)) {
		t.Fatalf("error %q does not name both keys", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	const clients = 8
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := ts.dial(t, ts.secret, Options{})
		wg.Go(func() {
			ctx := testCtx(t)
			index := randIndex()
			data := randBytes(300000 + i)
			a, err := c.Allocate(ctx, index, []uint32{uint32(i)}, int64(len(data)), randBytes(32))
			if err != nil {
				errs <- err
				return
			}
			w := a.Writers[uint32(i)]
			if err := w.WriteAt(ctx, data, 0); err != nil {
				errs <- err
				return
			}
			if err := w.Seal(ctx); err != nil {
				errs <- err
				return
			}
			got, err := c.Read(ctx, index, uint32(i), 0, int64(len(data)))
			if err != nil || !bytes.Equal(got, data) {
				errs <- fmt.Errorf("client %d read back: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := ts.srv.Stats(); st.Sealed != clients || st.OpenUploads != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUploadLimitPerClient(t *testing.T) {
	ts := startServer(t, storageserver.Config{MaxUploadsPerClient: 2}, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	if _, err := c.Allocate(ctx, randIndex(), []uint32{0, 1, 2}, 10, randBytes(32)); !errors.Is(err, ErrBusy) {
		t.Fatalf("three uploads with limit two: %v, want ErrBusy", err)
	}
	a, err := c.Allocate(ctx, randIndex(), []uint32{0, 1}, 10, randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	// Another node is not limited by this one's uploads.
	if _, err := ts.dial(t, ts.secret, Options{}).Allocate(ctx, randIndex(), []uint32{0}, 10, randBytes(32)); err != nil {
		t.Fatalf("other node: %v", err)
	}
	a.Writers[0].Abort(ctx)
	if _, err := c.Allocate(ctx, randIndex(), []uint32{0}, 10, randBytes(32)); err != nil {
		t.Fatalf("after abort: %v", err)
	}
}

func TestSlots(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	ref := storage.Ref{Index: randIndex(), Num: 2}
	lease := randBytes(32)
	if _, _, err := c.ReadSlot(ctx, ref); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("read missing slot: %v", err)
	}
	t1, err := c.WriteSlot(ctx, ref, "", []byte("v1"), lease)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteSlot(ctx, ref, "", []byte("lost"), lease); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("create over existing: %v, want ErrConflict", err)
	}
	t2, err := c.WriteSlot(ctx, ref, t1, []byte("v2"), lease)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteSlot(ctx, ref, t1, []byte("stale"), lease); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale token: %v, want ErrConflict", err)
	}
	v, tok, err := c.ReadSlot(ctx, ref)
	if err != nil || string(v) != "v2" || tok != t2 {
		t.Fatalf("read slot = %q %q %v", v, tok, err)
	}
	if _, err := c.WriteSlot(ctx, ref, t2, make([]byte, storageserver.MaxSlotSize+1), lease); err == nil {
		t.Fatal("oversized slot accepted")
	}
}

func TestLeases(t *testing.T) {
	path := t.TempDir() + "/leases.db"
	now := time.Unix(1_800_000_000, 0)
	cfg := storageserver.Config{LeasePath: path, Now: func() time.Time { return now }, LeaseDuration: time.Hour}
	ts := startServer(t, cfg, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx := testCtx(t)
	index := randIndex()
	if _, err := c.RenewLease(ctx, index, randBytes(32)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("renew on nothing: %v, want ErrNotFound", err)
	}
	upload(t, c, index, map[uint32][]byte{0: randBytes(10)}, randBytes(32))
	exp, err := c.RenewLease(ctx, index, randBytes(32))
	if err != nil || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("renew = %v, %v", exp, err)
	}
	ls, err := ts.srv.Leases(index)
	if err != nil || len(ls) != 2 {
		t.Fatalf("leases = %v, %v; want two owners", ls, err)
	}
	if _, err := c.RenewLease(ctx, index, []byte("short")); err == nil {
		t.Fatal("short lease secret accepted")
	}
}

func TestLeasesPersist(t *testing.T) {
	path := t.TempDir() + "/leases.db"
	index := randIndex()
	ts := startServer(t, storageserver.Config{LeasePath: path}, false)
	c := ts.dial(t, ts.secret, Options{})
	upload(t, c, index, map[uint32][]byte{0: randBytes(10)}, randBytes(32))
	ts.srv.Close()
	// The bbolt file survives a restart with its records.
	srv, err := storageserver.New(storageserver.Config{Backend: storagememory.New(), LeasePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ls, err := srv.Leases(index)
	if err != nil || len(ls) != 1 {
		t.Fatalf("leases after restart = %v, %v", ls, err)
	}
}

func TestAdviseCorruption(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{})
	if err := c.AdviseCorruption(testCtx(t), storage.Ref{Index: randIndex(), Num: 4}, false, "block hash mismatch\nin segment 3"); err != nil {
		t.Fatal(err)
	}
	if n := ts.srv.Stats().CorruptionAdvice; n != 1 {
		t.Fatalf("advice count %d", n)
	}
}

func TestCallTimeout(t *testing.T) {
	// A caller's short deadline is honoured and reported as such.
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.List(ctx, randIndex()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired context: %v", err)
	}
}
