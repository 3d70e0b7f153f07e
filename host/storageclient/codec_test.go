package storageclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/storageserver"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
)

// frames cuts b into pieces of at most size bytes, as HTTP/2 data frames
// arrive.
func frames(b []byte, size int) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), size)
		out = append(out, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return out
}

// checkRead decodes b, cut into frames of size, with shareCodec (placing
// the data into a buffer of its own when place) and with the standard
// proto codec, and fails when they disagree.
func checkRead(t *testing.T, b []byte, size int, place bool) {
	t.Helper()
	std := encoding.GetCodecV2("proto")
	want := &pb.ReadShareResponse{}
	werr := std.Unmarshal(frames(b, size), want)
	var placed []byte
	m := &readChunk{}
	if place {
		m.place = func(rng uint32, off int64, n int, shareSize int64) []byte {
			if placed != nil {
				t.Fatal("place called twice for one message")
			}
			placed = make([]byte, n)
			return placed
		}
	}
	gerr := codec.Unmarshal(frames(b, size), m)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("error %v, the proto codec says %v", gerr, werr)
	}
	if werr != nil {
		return
	}
	got := &m.msg
	data := got.Data
	if m.placed {
		if got.Data != nil || placed == nil {
			t.Fatalf("placed, yet msg.Data has %d bytes", len(got.Data))
		}
		data = placed
	}
	if got.Range != want.Range || got.Offset != want.Offset || got.ShareSize != want.ShareSize || !bytes.Equal(data, want.Data) {
		t.Fatalf("decoded range %d offset %d size %d, %d data bytes; proto codec: %d %d %d, %d", got.Range, got.Offset, got.ShareSize, len(data), want.Range, want.Offset, want.ShareSize, len(want.Data))
	}
	if !m.placed && !proto.Equal(got, want) {
		t.Fatalf("decoded %v, proto codec %v", got, want)
	}
}

func TestReadChunk(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 22000) // 352,000 bytes: a block
	std := mustMarshal(t, &pb.ReadShareResponse{Range: 3, Offset: 1 << 40, Data: data, ShareSize: 1<<40 + 1<<30})
	field := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
	}
	dataField := func(b, d []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, 3, protowire.BytesType), d)
	}
	dataFirst := field(field(dataField(nil, data[:100]), 2, 7), 1, 2)
	twiceData := dataField(dataField(nil, []byte("first")), []byte("second"))
	repeated := dataField(field(field(field(nil, 2, 5), 2, 9), 1, 1), []byte("abc"))
	repeated = field(field(repeated, 4, 10), 4, 20)
	unknown := field(dataField(nil, []byte("abc")), 9, 1)
	wrongType := protowire.AppendBytes(protowire.AppendTag(dataField(nil, []byte("abc")), 4, protowire.BytesType), []byte("x"))
	longTail := dataField(nil, []byte("abc"))
	for range 20 {
		longTail = field(longTail, 4, 1<<62)
	}
	longHead := field(nil, 1, 1)
	for range 20 {
		longHead = field(longHead, 2, 1<<62)
	}
	longHead = dataField(longHead, []byte("abc"))
	for _, tc := range []struct {
		name  string
		b     []byte
		frame int
	}{
		{"a block in 16 KiB frames", std, 16 << 10},
		{"a block in one frame", std, len(std)},
		{"a block in 7-byte frames", std, 7},
		{"share size only", mustMarshal(t, &pb.ReadShareResponse{ShareSize: 99}), 1},
		{"data only", mustMarshal(t, &pb.ReadShareResponse{Data: []byte("abc")}), 1},
		{"empty data", dataField(nil, nil), 1},
		{"negative offset", mustMarshal(t, &pb.ReadShareResponse{Offset: -7, Data: []byte("abc"), ShareSize: -1}), 2},
		{"big range", mustMarshal(t, &pb.ReadShareResponse{Range: 1<<32 - 1, Data: []byte("abc")}), 3},
		{"range over 32 bits", field(dataField(nil, []byte("abc")), 1, 1<<40+5), 3},
		{"data first", dataFirst, 10},
		{"data twice", twiceData, 4},
		{"fields repeated", repeated, 5},
		{"unknown field", unknown, 5},
		{"share size as bytes", wrongType, 5},
		{"long tail", longTail, 50},
		{"long head", longHead, 50},
		{"truncated data", std[:200], 64},
		{"truncated tail", std[:len(std)-2], 64},
		{"truncated head", std[:3], 1},
		{"empty", nil, 1},
		{"garbage", []byte{0xff, 0xff, 0xff}, 1},
		{"field zero", []byte{0x00, 0x01}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkRead(t, tc.b, tc.frame, false)
			checkRead(t, tc.b, tc.frame, true)
		})
	}
	// What servers send takes the fast path, data placed where asked.
	for _, b := range [][]byte{std, mustMarshal(t, &pb.ReadShareResponse{ShareSize: 5}), twiceData[:7]} {
		dst := make([]byte, len(data))
		m := &readChunk{place: func(uint32, int64, int, int64) []byte { return dst }}
		if !m.unmarshal(frames(b, 16<<10)) {
			t.Fatalf("%x...: not decoded by the fast path", b[:min(len(b), 8)])
		}
		if len(b) == len(std) && (!m.placed || !bytes.Equal(dst, data)) {
			t.Fatal("a block was not placed where asked")
		}
	}
}

// TestWriteChunk: a writeChunk goes on the wire exactly as the proto
// codec would send the same WriteShareRequest, and its chunk goes back to
// its pool once gRPC frees the message, not before.
func TestWriteChunk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle []byte
		offset int64
		n      int
	}{
		{"a chunk", bytes.Repeat([]byte{7}, 16), 5 << 20, 1 << 20},
		{"offset zero", []byte("h"), 0, 1000},
		{"negative offset", nil, -1, 3},
		{"no data", []byte("handle"), 9, 0},
		{"nothing", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := &recordPool{}
			b0 := make([]byte, 0, 1<<20)
			b := &b0
			*b = append(*b, randBytes(tc.n)...)
			want := mustMarshal(t, &pb.WriteShareRequest{Handle: tc.handle, Offset: tc.offset, Data: *b})
			data := append([]byte(nil), *b...)
			bs, err := codec.Marshal(&writeChunk{handle: tc.handle, offset: tc.offset, data: b, pool: pool})
			if err != nil {
				t.Fatal(err)
			}
			if got := bs.Materialize(); !bytes.Equal(got, want) {
				t.Fatalf("marshalled %d bytes, proto codec %d (equal: %v)", len(got), len(want), bytes.Equal(got, want))
			}
			if tc.n > 0 {
				if !bytes.Equal(bs[len(bs)-1].ReadOnlyData(), data) {
					t.Fatal("the chunk was copied or changed")
				}
				if len(pool.put) != 0 {
					t.Fatal("the chunk went back to its pool before it was freed")
				}
			}
			bs.Free()
			if len(pool.put) != 1 || pool.put[0] != b {
				t.Fatalf("%d buffers back in the pool after Free, want the chunk", len(pool.put))
			}
		})
	}
}

// recordPool records what is put back into it.
type recordPool struct{ put []*[]byte }

func (p *recordPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *recordPool) Put(b *[]byte)     { p.put = append(p.put, b) }

// TestChunkPool: chunks come back empty and at full capacity; a buffer of
// another capacity is never taken; a small share gets a buffer its size.
func TestChunkPool(t *testing.T) {
	cp := &chunkPool{size: 1 << 16}
	if b := cp.take(100); cp.owns(b) || cap(*b) != 100 || len(*b) != 0 {
		t.Fatalf("take(100): owned %v, cap %d", cp.owns(b), cap(*b))
	}
	b := cp.take(1 << 15)
	if !cp.owns(b) || cap(*b) != 1<<16 || len(*b) != 0 {
		t.Fatalf("take(32 KiB): owned %v, cap %d", cp.owns(b), cap(*b))
	}
	*b = append(*b, 1, 2, 3)
	cp.Put(b)
	other := make([]byte, 10, 1<<15)
	cp.Put(&other)
	for range 10 {
		c := cp.Get(5)
		if cap(*c) != 1<<16 || len(*c) != 5 {
			t.Fatalf("Get(5): len %d cap %d", len(*c), cap(*c))
		}
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzShareCodec: for any bytes cut into any frames, shareCodec decodes a
// ReadShareResponse exactly as the proto codec does, placed or not; and a
// writeChunk of any fields marshals as proto does.
func FuzzShareCodec(f *testing.F) {
	f.Add(mustMarshal(f, &pb.ReadShareResponse{Range: 1, Offset: 3, Data: []byte("some data"), ShareSize: 12}), uint16(5), int64(0))
	f.Add([]byte{0x1a, 0x01, 'x'}, uint16(1), int64(-1))
	f.Add([]byte{0x08, 0x00, 0x1a, 0x00, 0x20, 0x01}, uint16(2), int64(1<<40))
	f.Fuzz(func(t *testing.T, b []byte, frame uint16, off int64) {
		checkRead(t, b, int(frame%512)+1, false)
		checkRead(t, b, int(frame%512)+1, true)
		handle := b[:min(len(b), int(frame%40))]
		d := append([]byte(nil), b...)
		bs, err := codec.Marshal(&writeChunk{handle: handle, offset: off, data: &d})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := bs.Materialize(), mustMarshal(t, &pb.WriteShareRequest{Handle: handle, Offset: off, Data: b}); !bytes.Equal(got, want) {
			t.Fatalf("marshalled %x, proto codec %x", got, want)
		}
	})
}

// TestChunkReuse: many shares written at once through one client in writes
// of odd sizes (so chunks are filled, flushed at odd offsets, sent and
// reused), then read back into the reader's buffers: every byte is the
// one written.
func TestChunkReuse(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	c := ts.dial(t, ts.secret, Options{ChunkSize: 64 << 10})
	ctx := testCtx(t)
	sizes := []int{1, 1000, 64<<10 - 1, 64 << 10, 64<<10 + 1, 3<<20 + 12345}
	var wg sync.WaitGroup
	errs := make(chan error, len(sizes))
	for i, size := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writeAndCheck(ctx, c, size, 1+i*977)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// writeAndCheck writes a share of size random bytes in writes of step
// bytes (out of order once: the second write first), reads it back whole
// with ReadInto and in pieces with ReadRanges, and compares.
func writeAndCheck(ctx context.Context, c *Client, size, step int) error {
	index := randIndex()
	data := randBytes(size)
	a, err := c.Allocate(ctx, index, []uint32{0}, int64(size), randBytes(32))
	if err != nil {
		return err
	}
	w := a.Writers[0]
	buf := make([]byte, step) // the caller reuses its buffer too
	var offs []int
	for off := 0; off < size; off += step {
		offs = append(offs, off)
	}
	if len(offs) > 2 {
		offs[0], offs[1] = offs[1], offs[0]
	}
	for _, off := range offs {
		n := copy(buf, data[off:])
		if err := w.WriteAt(ctx, buf[:n], int64(off)); err != nil {
			return err
		}
		clear(buf)
	}
	if err := w.Seal(ctx); err != nil {
		return err
	}
	got := make([]byte, size)
	if n, err := c.ReadInto(ctx, index, 0, got, 0); err != nil || n != size {
		return errors.Join(err, errors.New("short read"))
	}
	if !bytes.Equal(got, data) {
		return errors.New("share read back differs")
	}
	parts, err := c.ReadRanges(ctx, index, 0, []Range{{0, int64(size / 2)}, {int64(size / 2), int64(size)}})
	if err != nil {
		return err
	}
	if !bytes.Equal(append(parts[0], parts[1]...), data) {
		return errors.New("share read back in ranges differs")
	}
	// Past the end: short, and said so.
	long := make([]byte, size+10)
	if n, err := c.ReadInto(ctx, index, 0, long, 0); n != size || !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(long[:n], data) {
		return errors.Join(err, errors.New("a read past the end was not short"))
	}
	return nil
}
