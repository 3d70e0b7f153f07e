package chk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
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
func sharedCodec(t *testing.T, arenaSize int) (*codec.Client, *dataplane.Arena, *countShared) {
	t.Helper()
	a, err := dataplane.NewArena("chk-test", arenaSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
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
	return codec.NewClient(codecpb.NewCodecClient(conn), a), a, cs
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
