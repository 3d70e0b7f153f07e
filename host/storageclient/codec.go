package storageclient

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec shareCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
)

// shareCodec is the client's gRPC codec for the two streams that carry
// nearly every share byte, the mirror of the storage server's codec. The
// standard proto codec marshals each WriteShare chunk into a buffer from
// gRPC's pool (zeroed whole first, then copied into), and on a read joins
// a ReadShareResponse's HTTP/2 frames into a zeroed pool buffer that
// proto.Unmarshal then copies again into fresh memory. shareCodec instead
// marshals a *writeChunk as its few header bytes followed by the chunk
// itself (no copy; the chunk goes back to its pool when gRPC has sent it),
// and decodes a *readChunk by reading the header fields itself and copying
// the data once, from the frames to where the caller wants it. Any other
// message, and a ReadShareResponse laid out other than the way protobuf
// encoders write it, goes through the standard codec. The bytes on the
// wire are exactly the standard codec's (FuzzShareCodec, TestWriteChunk).
type shareCodec struct{ encoding.CodecV2 }

var (
	codec    = shareCodec{encoding.GetCodecV2("proto")}
	useCodec = grpc.ForceCodecV2(codec)
)

func (c shareCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*writeChunk); ok {
		return m.marshal(), nil
	}
	return c.CodecV2.Marshal(v)
}

func (c shareCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*readChunk); ok {
		if m.unmarshal(data) {
			return nil
		}
		m.placed = false
		return c.CodecV2.Unmarshal(data, &m.msg)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// writeChunk is a WriteShareRequest whose data is a chunk lent to gRPC:
// data is handed over at Send and belongs to gRPC until it puts it back
// in pool (nil: the chunk is just dropped).
type writeChunk struct {
	handle []byte
	offset int64
	data   *[]byte
	pool   mem.BufferPool
}

// marshal encodes m as proto.Marshal encodes the same WriteShareRequest:
// fields in number order, zero values left out.
func (m *writeChunk) marshal() mem.BufferSlice {
	var d []byte
	if m.data != nil {
		d = *m.data
	}
	h := make([]byte, 0, 3*protowire.SizeVarint(1<<63)+len(m.handle)+3)
	if len(m.handle) > 0 {
		h = protowire.AppendTag(h, 1, protowire.BytesType)
		h = protowire.AppendBytes(h, m.handle)
	}
	if m.offset != 0 {
		h = protowire.AppendTag(h, 2, protowire.VarintType)
		h = protowire.AppendVarint(h, uint64(m.offset))
	}
	if len(d) == 0 {
		if m.data != nil && m.pool != nil {
			m.pool.Put(m.data)
		}
		return mem.BufferSlice{mem.SliceBuffer(h)}
	}
	h = protowire.AppendTag(h, 3, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(len(d)))
	return mem.BufferSlice{mem.SliceBuffer(h), mem.NewBuffer(m.data, m.pool)}
}

// chunkPool lends a Client's ShareWriters their chunk buffers, all of
// capacity size, and takes them back from gRPC once they are on the wire.
type chunkPool struct {
	size int
	p    sync.Pool
}

var _ mem.BufferPool = (*chunkPool)(nil)

// take returns an empty buffer for up to n bytes: a pooled chunk when n is
// a good part of one, else a buffer of exactly n (a small share must not
// hold a whole chunk). owns tells which.
func (cp *chunkPool) take(n int) *[]byte {
	if n < cp.size/4 {
		s := make([]byte, 0, n)
		return &s
	}
	return cp.Get(0)
}

// owns reports whether b is one of the pool's chunks (take gives others a
// smaller capacity).
func (cp *chunkPool) owns(b *[]byte) bool { return cap(*b) == cp.size }

// Get returns a pooled chunk of length n (n ≤ size).
func (cp *chunkPool) Get(n int) *[]byte {
	if v := cp.p.Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, cp.size)
	return &b
}

// Put takes a chunk back; a buffer of another capacity is dropped.
func (cp *chunkPool) Put(b *[]byte) {
	if !cp.owns(b) {
		return
	}
	*b = (*b)[:0]
	cp.p.Put(b)
}

// readChunk is what a ReadShare stream's messages are decoded into. Before
// each receive the caller sets place; the codec calls it with the header
// fields of a message that carries n > 0 data bytes, and copies the data
// into the slice it returns (which must be n bytes long), setting placed.
// When place is nil or returns another length, or the message is laid
// out otherwise, msg.Data holds the data instead.
type readChunk struct {
	msg    pb.ReadShareResponse
	placed bool
	place  func(rng uint32, off int64, n int, shareSize int64) []byte
}

// readChunkHead is how many bytes unmarshal parses before the data field
// and after it: room for the three scalar fields many times over.
const readChunkHead = 64

// unmarshal decodes a ReadShareResponse holding at most one data field,
// and nothing but the four known fields, each of its own wire type. It
// reports false (leaving msg to be reset by the standard codec) for any
// other layout, and never rejects anything itself: the standard codec
// decides what is an error.
func (m *readChunk) unmarshal(data mem.BufferSlice) bool {
	total := data.Len()
	var head [readChunkHead]byte
	h := head[:data.CopyTo(head[:min(total, readChunkHead)])]
	var (
		rng              uint32
		off, size        int64
		dataPos, dataLen = -1, 0
	)
	// fields parses b up to its end or, when stopAtData, up to a data
	// field, which it records.
	fields := func(b []byte, stopAtData bool) bool {
		pos := 0
		for pos < len(b) {
			num, typ, n := protowire.ConsumeTag(b[pos:])
			if n < 0 {
				return false
			}
			pos += n
			switch {
			case num == 1 && typ == protowire.VarintType:
				x, n := protowire.ConsumeVarint(b[pos:])
				if n < 0 {
					return false
				}
				rng, pos = uint32(x), pos+n
			case num == 2 && typ == protowire.VarintType:
				x, n := protowire.ConsumeVarint(b[pos:])
				if n < 0 {
					return false
				}
				off, pos = int64(x), pos+n
			case num == 4 && typ == protowire.VarintType:
				x, n := protowire.ConsumeVarint(b[pos:])
				if n < 0 {
					return false
				}
				size, pos = int64(x), pos+n
			case num == 3 && typ == protowire.BytesType && stopAtData:
				l, n := protowire.ConsumeVarint(b[pos:])
				if n < 0 {
					return false
				}
				if uint64(total-pos-n) < l {
					return false // truncated: the standard codec says so
				}
				dataPos, dataLen = pos+n, int(l)
				return true
			default:
				return false
			}
		}
		return true
	}
	if !fields(h, true) {
		return false
	}
	if dataPos < 0 {
		if len(h) < total {
			return false // no data field within the head: a long or odd message
		}
	} else {
		// The fields after the data (share_size, as encoders write it).
		end := dataPos + dataLen
		if total-end > readChunkHead {
			return false
		}
		var tail [readChunkHead]byte
		t := tail[:total-end]
		copyFrom(data, end, t)
		if !fields(t, false) {
			return false
		}
	}
	m.msg.Reset()
	m.msg.Range, m.msg.Offset, m.msg.ShareSize = rng, off, size
	m.placed = false
	if dataPos < 0 {
		return true
	}
	var dst []byte
	if m.place != nil && dataLen > 0 {
		dst = m.place(rng, off, dataLen, size)
	}
	if dst != nil && len(dst) == dataLen {
		m.placed = true
	} else {
		dst = make([]byte, dataLen)
		m.msg.Data = dst
	}
	copyFrom(data, dataPos, dst)
	return true
}

// copyFrom copies len(dst) bytes of data starting at off into dst.
func copyFrom(data mem.BufferSlice, off int, dst []byte) {
	for _, b := range data {
		if len(dst) == 0 {
			return
		}
		p := b.ReadOnlyData()
		if off >= len(p) {
			off -= len(p)
			continue
		}
		n := copy(dst, p[off:])
		dst, off = dst[n:], 0
	}
}
