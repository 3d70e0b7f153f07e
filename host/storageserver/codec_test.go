package storageserver

import (
	"bytes"
	"testing"
	"unsafe"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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

// checkSame decodes b, cut into frames of size, with shareCodec and with
// the standard proto codec, and fails when they disagree.
func checkSame(t *testing.T, b []byte, size int) {
	t.Helper()
	std := encoding.GetCodecV2("proto")
	want := &pb.WriteShareRequest{}
	werr := std.Unmarshal(frames(b, size), want)
	got := &pb.WriteShareRequest{}
	gerr := shareCodec{std}.Unmarshal(frames(b, size), got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("error %v, the proto codec says %v", gerr, werr)
	}
	if werr == nil && (!bytes.Equal(got.Handle, want.Handle) || got.Offset != want.Offset || !bytes.Equal(got.Data, want.Data) || !proto.Equal(got, want)) {
		t.Fatalf("decoded handle %x offset %d %d data bytes; proto codec: %x %d %d", got.Handle, got.Offset, len(got.Data), want.Handle, want.Offset, len(want.Data))
	}
}

func TestShareCodec(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes
	std, _ := proto.Marshal(&pb.WriteShareRequest{Handle: make([]byte, HandleSize), Offset: 1 << 40, Data: data})
	// Data first, then handle and offset: valid protobuf the fast path leaves alone.
	reordered := protowire.AppendTag(nil, 3, protowire.BytesType)
	reordered = protowire.AppendBytes(reordered, data[:100])
	reordered = protowire.AppendTag(reordered, 1, protowire.BytesType)
	reordered = protowire.AppendBytes(reordered, []byte("h"))
	// Two data fields: proto keeps the last.
	twice := protowire.AppendTag(nil, 3, protowire.BytesType)
	twice = protowire.AppendBytes(twice, []byte("first"))
	twice = protowire.AppendTag(twice, 3, protowire.BytesType)
	twice = protowire.AppendBytes(twice, []byte("second"))
	// A long handle pushes data past the parsed head.
	long, _ := proto.Marshal(&pb.WriteShareRequest{Handle: make([]byte, 200), Data: []byte("x")})
	for _, tc := range []struct {
		name  string
		b     []byte
		frame int
	}{
		{"a chunk in 16 KiB frames", std, 16 << 10},
		{"a chunk in one frame", std, len(std)},
		{"a chunk in 7-byte frames", std[:5000], 7},
		{"no data", mustMarshal(t, &pb.WriteShareRequest{Handle: []byte{1, 2}, Offset: 5}), 3},
		{"data only", mustMarshal(t, &pb.WriteShareRequest{Data: []byte("abc")}), 1},
		{"negative offset", mustMarshal(t, &pb.WriteShareRequest{Offset: -7, Data: []byte("abc")}), 2},
		{"data before the handle", reordered, 10},
		{"data twice", twice, 4},
		{"long handle", long, 50},
		{"truncated", std[:200], 64},
		{"empty", nil, 1},
		{"garbage", []byte{0xff, 0xff, 0xff}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) { checkSame(t, tc.b, tc.frame) })
	}
}

// TestChunkPool: a pooled chunk comes back at full size and at any length.
func TestChunkPool(t *testing.T) {
	lentMu.Lock()
	n0 := len(lent) // other tests' decoded requests, never put back
	lentMu.Unlock()
	b := getChunk(1000)
	if len(b) != 1000 || cap(b) != MaxChunk {
		t.Fatalf("getChunk(1000): len %d cap %d", len(b), cap(b))
	}
	putChunk(b)
	if big := getChunk(MaxChunk + 1); len(big) != MaxChunk+1 {
		t.Fatalf("getChunk(MaxChunk+1): len %d", len(big))
	}
	putChunk(make([]byte, 10)) // not a chunk: ignored
	if c := getChunk(MaxChunk); len(c) != MaxChunk {
		t.Fatalf("getChunk(MaxChunk): len %d", len(c))
	}
	// A MaxChunk buffer the pool did not lend (a request decoded elsewhere)
	// is never taken: its owner may still read it.
	foreign := make([]byte, MaxChunk)
	foreign[0] = 42
	putChunk(foreign)
	for range 100 {
		c := getChunk(10)
		if unsafe.SliceData(c) == unsafe.SliceData(foreign) {
			t.Fatal("the pool lent a buffer it never owned")
		}
		putChunk(c)
	}
	lentMu.Lock()
	n := len(lent)
	lentMu.Unlock()
	if n != n0+1 { // the getChunk(MaxChunk) above, never put back
		t.Fatalf("%d buffers lent, want %d", n, n0+1)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzShareCodec: for any bytes cut into any frames, shareCodec decodes a
// WriteShareRequest exactly as the proto codec does.
func FuzzShareCodec(f *testing.F) {
	f.Add(mustMarshalF(&pb.WriteShareRequest{Handle: make([]byte, HandleSize), Offset: 3, Data: []byte("some data")}), uint16(5))
	f.Add([]byte{0x1a, 0x01, 'x'}, uint16(1))
	f.Add([]byte{0x0a, 0x00, 0x1a, 0x00}, uint16(2))
	f.Fuzz(func(t *testing.T, b []byte, frame uint16) {
		checkSame(t, b, int(frame%512)+1)
	})
}

func mustMarshalF(m proto.Message) []byte {
	b, _ := proto.Marshal(m)
	return b
}
