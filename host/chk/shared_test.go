package chk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/codec/codecpb"
	"github.com/tarnfs/tarn/sdk/dataplane"
)

// countShared counts the shared-memory encode calls reaching the server.
type countShared struct {
	codecpb.CodecServer
	calls atomic.Int64
}

func (c *countShared) EncodeShared(ctx context.Context, r *codecpb.EncodeSharedRequest) (*codecpb.EncodeSharedResponse, error) {
	c.calls.Add(1)
	return c.CodecServer.EncodeShared(ctx, r)
}

// sharedCodec serves the real Reed-Solomon codec over tarn.codec.v1 on a
// unix socket with an arena shared by both ends, as a plugin process does.
func sharedCodec(t testing.TB, arenaSize int) (*codec.Client, *dataplane.Arena, *countShared) {
	t.Helper()
	a, err := dataplane.NewArena("chk-test", arenaSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	rpc, cs := serveCodec(t, a)
	return codec.NewClient(rpc, a), a, cs
}

// serveCodec serves the Reed-Solomon codec on a unix socket, with arena a
// (nil: none) mapped on the plugin's side.
func serveCodec(t testing.TB, a *dataplane.Arena) (codecpb.CodecClient, *countShared) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "codec.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	cs := &countShared{CodecServer: codec.NewServer(rs, a)}
	codecpb.RegisterCodecServer(s, cs)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return codecpb.NewCodecClient(conn), cs
}

// arenaEmpty reports whether the whole arena can be allocated at once,
// that is whether every region was freed.
func arenaEmpty(a *dataplane.Arena) bool {
	r, err := a.Alloc(a.Size())
	if err != nil {
		return false
	}
	a.Free(r)
	return true
}

// TestEncoderSharedBuffers encodes through a codec client with shared
// memory: the encoder's segments and blocks must lie in the arena while it
// runs, the shares must equal those of the in-process codec byte for byte,
// and Close and Abort must return every region.
func TestEncoderSharedBuffers(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 16}
	for _, tc := range []struct {
		name  string
		size  int
		abort bool
	}{
		{"one short segment", 1000, false},
		{"many segments and a short last one", 9*(1<<16) + 77, false},
		{"aborted half way", 9 * (1 << 16), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, a, cs := sharedCodec(t, 8<<20)
			data := content(tc.size, uint64(tc.size))
			key := testKey(3)
			size, err := ShareSize(p, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMemShares(p.N, size)
			e, err := NewEncoder(context.Background(), p, key, int64(len(data)), client, m)
			if err != nil {
				t.Fatal(err)
			}
			if e.cur.bufs == nil || !e.cur.bufs.Shared() {
				t.Fatal("the encoder's segment buffers are not in shared memory")
			}
			if arenaEmpty(a) {
				t.Fatal("arena empty while the encoder holds buffers")
			}
			if tc.abort {
				if _, err := e.Write(data[:len(data)/2]); err != nil {
					t.Fatal(err)
				}
				e.Abort()
				e.Abort() // twice is harmless
				if _, err := e.Close(); err == nil {
					t.Fatal("Close after Abort succeeded")
				}
				if !arenaEmpty(a) {
					t.Fatal("Abort left regions in the arena")
				}
				return
			}
			if _, err := e.Write(data); err != nil {
				t.Fatal(err)
			}
			got, err := e.Close()
			if err != nil {
				t.Fatal(err)
			}
			e.Abort() // after Close: nothing to do
			if !arenaEmpty(a) {
				t.Fatal("Close left regions in the arena")
			}
			segs := mustLayout(t, p, int64(len(data))).Segments
			if n := cs.calls.Load(); n != int64(segs) {
				t.Errorf("%d shared encode calls for %d segments", n, segs)
			}
			want, wm := encode(t, p, key, data)
			if got != want {
				t.Fatalf("cap %v, in-process encoder gave %v", got, want)
			}
			for s := range wm.Shares {
				if !bytes.Equal(m.Shares[s], wm.Shares[s]) {
					t.Fatalf("share %d differs from the in-process encoder's", s)
				}
			}
		})
	}
}

// TestEncoderArenaFull falls back to heap buffers when the arena has no
// room, and still encodes correctly.
func TestEncoderArenaFull(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 16}
	client, a, _ := sharedCodec(t, 4096)
	data := content(3*(1<<16)+5, 5)
	size, _ := ShareSize(p, int64(len(data)))
	m := NewMemShares(p.N, size)
	e, err := NewEncoder(context.Background(), p, testKey(4), int64(len(data)), client, m)
	if err != nil {
		t.Fatal(err)
	}
	if e.cur.bufs != nil && e.cur.bufs.Shared() {
		t.Fatal("shared buffers in a 4 KiB arena")
	}
	if _, err := e.Write(data); err != nil {
		t.Fatal(err)
	}
	got, err := e.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, wm := encode(t, p, testKey(4), data)
	if got != want || !bytes.Equal(m.Shares[4], wm.Shares[4]) {
		t.Fatal("heap fallback encoded other shares")
	}
	if !arenaEmpty(a) {
		t.Fatal("arena not empty")
	}
}

// TestEncoderReadFrom: io.Copy into an Encoder (its ReadFrom, reading
// straight into the segment buffers) gives the shares and cap Write gives,
// with readers that return any number of bytes; too many bytes and a
// failing reader are errors, and no error leaves buffers in the arena.
func TestEncoderReadFrom(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 14}
	data := content(5*(1<<14)+321, 9)
	want, wm := encode(t, p, testKey(6), data)
	size, _ := ShareSize(p, int64(len(data)))
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		r       func() io.Reader
		size    int
		wantErr string
	}{
		// struct{io.Reader} hides bytes.Reader's WriteTo, which io.Copy
		// would use instead of the Encoder's ReadFrom.
		{"whole", func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} }, len(data), ""},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:3000])) }, 3000, ""},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }, len(data), ""},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }, len(data), ""},
		{"too many bytes", func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} }, len(data) - 1, "more than the declared"},
		{"reader fails", func() io.Reader { return io.MultiReader(bytes.NewReader(data[:20000]), iotest.ErrReader(boom)) }, len(data), "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, a, _ := sharedCodec(t, 4<<20)
			m := NewMemShares(p.N, size)
			if tc.size != len(data) {
				sz, _ := ShareSize(p, int64(tc.size))
				m = NewMemShares(p.N, sz)
			}
			e, err := NewEncoder(context.Background(), p, testKey(6), int64(tc.size), client, m)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(e, tc.r())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("copy: %d bytes, error %v, want %q", n, err, tc.wantErr)
				}
				e.Abort()
				if !arenaEmpty(a) {
					t.Fatal("a failed encoder left regions in the arena")
				}
				return
			}
			if err != nil || n != int64(tc.size) {
				t.Fatalf("copy: %d bytes, %v", n, err)
			}
			got, err := e.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tc.size == len(data) {
				if got != want || !bytes.Equal(m.Shares[2], wm.Shares[2]) {
					t.Fatal("ReadFrom encoded other shares than Write")
				}
			} else if w, _ := encode(t, p, testKey(6), data[:tc.size]); got != w {
				t.Fatal("ReadFrom encoded another cap than Write")
			}
			if !arenaEmpty(a) {
				t.Fatal("Close left regions in the arena")
			}
		})
	}
}

// arenaSource is a ShareSource over MemShares that records whether each
// block read lands in the arena (the decoder's zero-copy path) and can
// fail every read from some point.
type arenaSource struct {
	m       *MemShares
	a       *dataplane.Arena
	blocks  int64 // offset of the first block in every share
	inArena atomic.Int64
	onHeap  atomic.Int64
	failAll atomic.Bool
}

func (s *arenaSource) ReadAt(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	if s.failAll.Load() {
		return 0, errors.New("server gone")
	}
	if off >= s.blocks {
		if _, ok := s.a.Offset(p); ok {
			s.inArena.Add(1)
		} else {
			s.onHeap.Add(1)
		}
	}
	return s.m.ReadAt(ctx, sh, p, off)
}

// TestDecoderSharedBuffers decodes through a codec client with shared
// memory: block reads must land in the arena, the bytes must be the
// file's (a corrupt block is still caught and replaced), and every path,
// the failing ones too, must leave the arena empty when the call returns.
func TestDecoderSharedBuffers(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 16}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		size    int
		corrupt bool // flip a byte of share 0's block 1
		missing []int
		run     func(t *testing.T, d *Decoder, src *arenaSource, data []byte)
	}{
		{"whole file, one short segment", 1000, false, nil, readWhole},
		{"whole file, many segments", 9*(1<<16) + 77, false, nil, readWhole},
		{"exactly K shares", 3*(1<<16) + 1, false, []int{0, 3}, readWhole},
		{"corrupt block", 4 * (1 << 16), true, nil, func(t *testing.T, d *Decoder, src *arenaSource, data []byte) {
			readWhole(t, d, src, data)
			pr := d.Problems()
			if len(pr) != 1 || pr[0].Share != 0 || pr[0].Segment != 1 {
				t.Fatalf("problems %v, want share 0 segment 1", pr)
			}
		}},
		{"ranges across segments", 5*(1<<16) + 3, false, nil, func(t *testing.T, d *Decoder, src *arenaSource, data []byte) {
			for _, r := range [][2]int{{0, 10}, {(1 << 16) - 5, 10}, {1 << 16, 2 << 16}, {100, 3 << 16}, {len(data) - 7, 7}} {
				buf := make([]byte, r[1])
				if _, err := d.ReadAt(buf, int64(r[0])); err != nil {
					t.Fatalf("read %d+%d: %v", r[0], r[1], err)
				}
				if !bytes.Equal(buf, data[r[0]:r[0]+r[1]]) {
					t.Fatalf("read %d+%d: wrong bytes", r[0], r[1])
				}
			}
		}},
		{"servers fail mid-file", 6 * (1 << 16), false, nil, func(t *testing.T, d *Decoder, src *arenaSource, data []byte) {
			buf := make([]byte, 1<<16)
			if _, err := d.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			src.failAll.Store(true)
			if _, err := d.ReadAt(buf, 3<<16); !errors.Is(err, ErrNotEnoughShares) {
				t.Fatalf("read with every server gone: %v", err)
			}
			var out bytes.Buffer
			if _, err := d.WriteTo(&out); err == nil {
				t.Fatal("WriteTo with every server gone succeeded")
			}
		}},
		{"cancelled", 4 * (1 << 16), false, nil, func(t *testing.T, d *Decoder, src *arenaSource, data []byte) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := d.ReadAtContext(cctx, make([]byte, 10), 2<<16); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled read: %v", err)
			}
		}},
		{"closed", 1 << 16, false, nil, func(t *testing.T, d *Decoder, src *arenaSource, data []byte) {
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d.Close() // twice is harmless
			if _, err := d.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrClosed) {
				t.Fatalf("read after Close: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, a, _ := sharedCodec(t, 8<<20)
			data := content(tc.size, uint64(tc.size)+7)
			c, m := encode(t, p, testKey(8), data)
			l := mustLayout(t, p, int64(len(data)))
			if tc.corrupt {
				off, _ := l.Block(1)
				m.Shares[0][off+17] ^= 0x10
			}
			for _, s := range tc.missing {
				m.Shares[s] = nil
			}
			src := &arenaSource{m: m, a: a, blocks: l.BlocksOffset}
			d, err := NewDecoder(ctx, c, client, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.run(t, d, src, data)
			if !arenaEmpty(a) {
				t.Fatal("the decoder left regions in the arena")
			}
			if src.inArena.Load() == 0 || src.onHeap.Load() != 0 {
				if tc.name != "closed" && tc.name != "cancelled" {
					t.Fatalf("block reads: %d into the arena, %d onto the heap", src.inArena.Load(), src.onHeap.Load())
				}
			}
		})
	}
}

func readWhole(t *testing.T, d *Decoder, _ *arenaSource, data []byte) {
	t.Helper()
	var out bytes.Buffer
	if _, err := d.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo: %v (%d bytes of %d, equal %v)", err, out.Len(), len(data), bytes.Equal(out.Bytes(), data))
	}
	buf := make([]byte, len(data))
	if _, err := d.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("ReadAt of the whole file: %v", err)
	}
}

// TestDecoderNoArena decodes with heap buffers: a codec client whose
// plugin has no shared memory (AllocBuffers gives heap memory), and an
// arena too small for one segment, with the right bytes either way and a
// corrupt block still caught.
func TestDecoderNoArena(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 16}
	ctx := context.Background()
	data := content(5*(1<<16)+9, 11)
	c, m := encode(t, p, testKey(2), data)
	l := mustLayout(t, p, int64(len(data)))
	off, _ := l.Block(2)
	m.Shares[1][off+5] ^= 1
	noArena, _ := serveCodec(t, nil)
	tiny, ta, _ := sharedCodec(t, 4096)
	for _, tc := range []struct {
		name  string
		codec codec.Codec
	}{
		{"client without arena", codec.NewClient(noArena, nil)},
		{"arena too small", tiny},
		{"in-process codec", rs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecoder(ctx, c, tc.codec, m, &Options{Shares: []int{1, 2, 3, 4, 0}})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := d.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("WriteTo: %v", err)
			}
			if pr := d.Problems(); len(pr) != 1 || pr[0].Share != 1 || pr[0].Segment != 2 {
				t.Fatalf("problems %v, want share 1 segment 2", pr)
			}
			if d.bufs != nil {
				t.Fatal("shared buffers held after the call")
			}
		})
	}
	if !arenaEmpty(ta) {
		t.Fatal("the tiny arena is not empty")
	}
}

// TestDecoderSmallFileBuffers: the heap buffers of a small file are sized
// to the file, not to the 1 MiB segment size.
func TestDecoderSmallFileBuffers(t *testing.T) {
	p := DefaultParams
	data := content(4096, 3)
	c, m := encode(t, p, testKey(1), data)
	d, err := NewDecoder(context.Background(), c, rs, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := d.ReadAt(buf, 50); err != nil || !bytes.Equal(buf, data[50:150]) {
		t.Fatalf("read: %v", err)
	}
	if cap(d.heapCT) > 4096 || cap(d.plain) > 4096 || cap(d.heapSlots[0]) > 4096/p.K+1 {
		t.Fatalf("buffers of %d, %d and %d bytes for a 4 KiB file", cap(d.heapCT), cap(d.plain), cap(d.heapSlots[0]))
	}
}

// lendingSink is a BlockSink that keeps the blocks it is lent and copies
// them into MemShares only when the test lets it (release after), so the
// encoder must not reuse a segment's buffers before then.
type lendingSink struct {
	*MemShares
	mu      sync.Mutex
	held    []lent
	failAt  int // WriteBlock call that fails (0: none)
	calls   int
	maxHeld int
}

type lent struct {
	sh      int
	p, copy []byte
	off     int64
	release func()
}

func (s *lendingSink) WriteBlock(ctx context.Context, sh int, p []byte, off int64, release func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls == s.failAt {
		release()
		return errors.New("server gone")
	}
	s.held = append(s.held, lent{sh, p, append([]byte(nil), p...), off, release})
	s.maxHeld = max(s.maxHeld, len(s.held))
	return nil
}

// flush writes and releases what is held, checking that nobody changed a
// lent block meanwhile; keep holds back the newest keep blocks.
func (s *lendingSink) flush(t *testing.T, keep int) {
	s.mu.Lock()
	n := max(0, len(s.held)-keep)
	out := s.held[:n]
	s.held = append([]lent(nil), s.held[n:]...)
	s.mu.Unlock()
	for _, l := range out {
		if !bytes.Equal(l.p, l.copy) {
			t.Errorf("block of share %d at %d changed while lent", l.sh, l.off)
		}
		s.MemShares.WriteAt(context.Background(), l.sh, l.p, l.off)
		l.release()
	}
}

// TestEncoderBlockSink: a sink that takes blocks by reference gets the
// encoder's own buffers, which the encoder does not touch until they are
// released; the shares equal the copying path's; buffers still lent at
// Close or at a failure are returned to the arena when the sink releases
// them, and only then.
func TestEncoderBlockSink(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 14}
	data := content(12*(1<<14)+99, 21)
	key := testKey(7)
	want, wm := encode(t, p, key, data)
	size, _ := ShareSize(p, int64(len(data)))
	for _, tc := range []struct {
		name   string
		keep   int // blocks the sink holds on to as it goes
		failAt int
	}{
		{"released at once", 0, 0},
		{"sink holds two segments", 2 * p.N, 0},
		{"sink holds everything until Close", 1 << 30, 0},
		{"a block fails", 3, 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, a, _ := sharedCodec(t, 32<<20)
			s := &lendingSink{MemShares: NewMemShares(p.N, size), failAt: tc.failAt}
			e, err := NewEncoder(context.Background(), p, key, int64(len(data)), client, s)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(data); off += 5000 {
				if _, err = e.Write(data[off:min(len(data), off+5000)]); err != nil {
					break
				}
				s.flush(t, tc.keep)
			}
			if tc.failAt != 0 {
				if err == nil {
					_, err = e.Close()
				}
				if err == nil || !strings.Contains(err.Error(), "server gone") {
					t.Fatalf("encode with a failing block: %v", err)
				}
				e.Abort()
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got, err := e.Close()
				if err != nil {
					t.Fatal(err)
				}
				s.mu.Lock()
				held := len(s.held)
				s.mu.Unlock()
				if held > 0 && arenaEmpty(a) {
					t.Fatal("buffers of lent blocks returned to the arena before their release")
				}
				s.flush(t, 0)
				if got != want {
					t.Fatalf("cap %v, copying path gave %v", got, want)
				}
				for sh := range wm.Shares {
					if !bytes.Equal(s.Shares[sh], wm.Shares[sh]) {
						t.Fatalf("share %d differs from the copying path's", sh)
					}
				}
			}
			s.flush(t, 0)
			if !arenaEmpty(a) {
				t.Fatal("regions left in the arena after every block was released")
			}
		})
	}
}
