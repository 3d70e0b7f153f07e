// Package storageclient is the Go client of one storage server: it dials a
// node address over pinned TLS (host/nodelink), proves grid membership, and
// offers the storage protocol tarn.storageserver.v1 as plain Go calls with
// timeouts. Errors wrap the storage package's sentinels (storage.ErrNotFound,
// ErrNoSpace, ErrConflict, ...) and nodelink.ErrNotMember, so callers branch
// with errors.Is.
package storageclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/nodelink"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/transport"
)

// Defaults for Options fields left zero.
const (
	DefaultCallTimeout = 30 * time.Second
	DefaultDialTimeout = 10 * time.Second
	DefaultChunkSize   = 1 << 20
)

// ErrBusy: the server has too many uploads open from this node; try later
// or elsewhere.
var ErrBusy = errors.New("storage server busy")

// Options tune a Client.
type Options struct {
	// GridSecret proves membership; nil sends no proof (reads from a server
	// with open reads only).
	GridSecret []byte
	// CallTimeout bounds each unary call and each silence of a stream
	// (no message sent or received for this long), unless the caller's
	// context ends sooner.
	CallTimeout time.Duration
	// DialTimeout bounds Dial.
	DialTimeout time.Duration
	// ChunkSize is the size of WriteShare messages and of a ShareWriter's
	// buffer (default and maximum 1 MiB).
	ChunkSize int
}

// Client talks to one storage server.
type Client struct {
	cc     *grpc.ClientConn
	rpc    pb.StorageServerClient
	opts   Options
	addr   string
	chunks *chunkPool // ShareWriters' chunk buffers
	group  putGroup   // PutSharesGrouped's queue
}

// Dial connects to the storage server at a node address.
func Dial(ctx context.Context, tr transport.Transport, addr string, cert tls.Certificate, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	var dopts []grpc.DialOption
	if opts.GridSecret != nil {
		p, err := nodelink.GridProof(opts.GridSecret, cert)
		if err != nil {
			return nil, fmt.Errorf("dial storage server %s: %w", addr, err)
		}
		dopts = append(dopts, grpc.WithPerRPCCredentials(p))
	}
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	cc, err := nodelink.DialGRPC(dctx, tr, addr, cert, dopts...)
	if err != nil {
		return nil, fmt.Errorf("dial storage server: %w", err)
	}
	c := New(cc, opts)
	c.addr = addr
	return c, nil
}

// New wraps an existing connection (made with nodelink.DialGRPC and, for
// writes, nodelink.GridProof credentials). Close closes cc.
func New(cc *grpc.ClientConn, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{cc: cc, rpc: pb.NewStorageServerClient(cc), opts: opts, chunks: &chunkPool{size: opts.ChunkSize}}
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ChunkSize <= 0 || o.ChunkSize > DefaultChunkSize {
		o.ChunkSize = DefaultChunkSize
	}
	return o
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// call bounds a unary call by CallTimeout. A context whose deadline comes
// sooner already bounds it: it is used as it is, without another context
// and timer per call (the grid's requests carry their server timeout).
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.opts.CallTimeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.opts.CallTimeout)
}

func noCancel() {}

// Version is what GetVersion reports.
type Version struct {
	ProtocolVersion uint32
	Software        string
	Available       int64
	Reserved        int64
	MaxShareSize    int64
	MaxChunk        uint32
	MaxSlotSize     uint32
	OpenReads       bool
}

// Version asks the server what it is and how much space it offers.
func (c *Client) Version(ctx context.Context) (Version, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.GetVersion(ctx, &pb.GetVersionRequest{})
	if err != nil {
		return Version{}, wrap("get version", err)
	}
	return Version{r.ProtocolVersion, r.Software, r.Available, r.Reserved, r.MaxShareSize, r.MaxChunk, r.MaxSlotSize, r.OpenReads}, nil
}

// Allocation is the answer to Allocate.
type Allocation struct {
	// AlreadyHave are shares the server holds sealed already.
	AlreadyHave []uint32
	// InProgress are shares another upload is writing right now.
	InProgress []uint32
	// Writers hold one ShareWriter per accepted share.
	Writers map[uint32]*ShareWriter
}

// Allocate asks the server to accept shares of size bytes each.
func (c *Client) Allocate(ctx context.Context, index [storage.StorageIndexSize]byte, shnums []uint32, size int64, leaseSecret []byte) (*Allocation, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.Allocate(ctx, &pb.AllocateRequest{StorageIndex: index[:], ShareNums: shnums, ShareSize: size, LeaseSecret: leaseSecret})
	if err != nil {
		return nil, wrap(fmt.Sprintf("allocate %x", index[:]), err)
	}
	a := &Allocation{AlreadyHave: r.AlreadyHave, InProgress: r.InProgress, Writers: map[uint32]*ShareWriter{}}
	for _, al := range r.Allocated {
		a.Writers[al.ShareNum] = &ShareWriter{c: c, ref: storage.Ref{Index: index, Num: al.ShareNum}, handle: al.Handle, size: size}
	}
	return a, nil
}

// Range is a byte range of a share.
type Range struct {
	Offset, Length int64
}

// Read reads length bytes at off of a sealed share. A share that ends
// sooner gives fewer bytes and io.ErrUnexpectedEOF.
func (c *Client) Read(ctx context.Context, index [storage.StorageIndexSize]byte, shnum uint32, off, length int64) ([]byte, error) {
	bs, err := c.ReadRanges(ctx, index, shnum, []Range{{off, length}})
	if err != nil {
		return nil, err
	}
	if int64(len(bs[0])) < length {
		return bs[0], fmt.Errorf("read share %d of %x: %d of %d bytes at %d: %w", shnum, index[:], len(bs[0]), length, off, io.ErrUnexpectedEOF)
	}
	return bs[0], nil
}

// ReadInto reads len(p) bytes at off of a sealed share straight into p
// (the only copy of the data on this side is from the received frames
// into p). A share that ends sooner fills n < len(p) bytes and gives
// io.ErrUnexpectedEOF.
func (c *Client) ReadInto(ctx context.Context, index [storage.StorageIndexSize]byte, shnum uint32, p []byte, off int64) (int, error) {
	bs, err := c.readShare(ctx, index, shnum, []Range{{off, int64(len(p))}}, [][]byte{p})
	if err != nil {
		return 0, err
	}
	if n := len(bs[0]); n < len(p) {
		return n, fmt.Errorf("read share %d of %x: %d of %d bytes at %d: %w", shnum, index[:], n, len(p), off, io.ErrUnexpectedEOF)
	}
	return len(p), nil
}

// ReadRanges reads several ranges of one sealed share in one call. Each
// result holds the bytes of its range, short where the share ends.
func (c *Client) ReadRanges(ctx context.Context, index [storage.StorageIndexSize]byte, shnum uint32, ranges []Range) ([][]byte, error) {
	return c.readShare(ctx, index, shnum, ranges, nil)
}

var readShareDesc = streamDesc("ReadShare")

func streamDesc(name string) *grpc.StreamDesc {
	for i := range pb.StorageServer_ServiceDesc.Streams {
		if d := &pb.StorageServer_ServiceDesc.Streams[i]; d.StreamName == name {
			return d
		}
	}
	panic("storageclient: no stream " + name + " in the storage service")
}

// readShare reads ranges of a share. dst, when not nil, gives for each
// range the buffer its bytes go to (as long as the range); otherwise a
// range's buffer is allocated once its first message tells the share
// size. Each result is its buffer cut to the bytes received.
func (c *Client) readShare(ctx context.Context, index [storage.StorageIndexSize]byte, shnum uint32, ranges []Range, dst [][]byte) ([][]byte, error) {
	obj := fmt.Sprintf("read share %d of %x", shnum, index[:])
	req := &pb.ReadShareRequest{StorageIndex: index[:], ShareNum: shnum}
	for i, r := range ranges {
		if r.Offset < 0 || r.Length < 0 {
			return nil, fmt.Errorf("%s: range %d (%d+%d): %w", obj, i, r.Offset, r.Length, storage.ErrRange)
		}
		req.Ranges = append(req.Ranges, &pb.ByteRange{Offset: r.Offset, Length: r.Length})
	}
	bufs := make([][]byte, len(ranges))
	if dst != nil {
		copy(bufs, dst)
	}
	got := make([]int64, len(ranges))
	// place is where a message's data goes: the next bytes of its range's
	// buffer, or nil when the message does not continue its range.
	place := func(rng uint32, off int64, n int, shareSize int64) []byte {
		i := int(rng)
		if i >= len(ranges) {
			return nil
		}
		r := ranges[i]
		if off != r.Offset+got[i] || got[i]+int64(n) > r.Length {
			return nil
		}
		if bufs[i] == nil {
			expect := max(min(r.Length, shareSize-r.Offset), int64(n))
			bufs[i] = make([]byte, expect)
		}
		if need := got[i] + int64(n); need > int64(len(bufs[i])) {
			// More than the share size said: grow, within the range.
			nb := make([]byte, max(need, min(r.Length, 2*int64(len(bufs[i])))))
			copy(nb, bufs[i][:got[i]])
			bufs[i] = nb
		}
		b := bufs[i][got[i] : got[i]+int64(n)]
		got[i] += int64(n)
		return b
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dog := newWatchdog(c.opts.CallTimeout, cancel)
	defer dog.stop()
	stream, err := c.cc.NewStream(ctx, readShareDesc, pb.StorageServer_ReadShare_FullMethodName, useCodec)
	if err == nil {
		err = stream.SendMsg(req)
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err != nil {
		return nil, wrap(obj, dog.explain(err))
	}
	m := &readChunk{place: place}
	for {
		err := stream.RecvMsg(m)
		if err == io.EOF {
			out := make([][]byte, len(ranges))
			for i := range out {
				if bufs[i] != nil {
					out[i] = bufs[i][:got[i]]
				}
			}
			return out, nil
		}
		if err != nil {
			return nil, wrap(obj, dog.explain(err))
		}
		dog.kick()
		if m.placed || len(m.msg.Data) == 0 {
			continue
		}
		// Decoded by the standard codec, or not where place expected it.
		i := int(m.msg.Range)
		if i >= len(ranges) {
			return nil, fmt.Errorf("%s: server answered range %d of %d", obj, i, len(ranges))
		}
		b := place(m.msg.Range, m.msg.Offset, len(m.msg.Data), m.msg.ShareSize)
		if b == nil {
			return nil, fmt.Errorf("%s: server sent %d bytes at %d for range %d, expected offset %d", obj, len(m.msg.Data), m.msg.Offset, i, ranges[i].Offset+got[i])
		}
		copy(b, m.msg.Data)
	}
}

// ShareInfo is one sealed share a server holds.
type ShareInfo struct {
	Num  uint32
	Size int64
}

// List returns the sealed shares of a storage index, sorted by number.
func (c *Client) List(ctx context.Context, index [storage.StorageIndexSize]byte) ([]ShareInfo, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.ListShares(ctx, &pb.ListSharesRequest{StorageIndex: index[:]})
	if err != nil {
		return nil, wrap(fmt.Sprintf("list shares of %x", index[:]), err)
	}
	out := make([]ShareInfo, len(r.Shares))
	for i, s := range r.Shares {
		out[i] = ShareInfo{s.ShareNum, s.Size}
	}
	return out, nil
}

// ReadSlot returns a mutable slot's value and token (storage.ErrNotFound
// if it does not exist).
func (c *Client) ReadSlot(ctx context.Context, ref storage.Ref) ([]byte, string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.ReadSlot(ctx, &pb.ReadSlotRequest{StorageIndex: ref.Index[:], SlotNum: ref.Num})
	if err != nil {
		return nil, "", wrap("read slot "+ref.String(), err)
	}
	return r.Value, r.Token, nil
}

// ListSlots returns the slot numbers the server holds for a storage index,
// sorted. A server that predates the call gives an error wrapping
// errors.ErrUnsupported.
func (c *Client) ListSlots(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.ListSlots(ctx, &pb.ListSlotsRequest{StorageIndex: index[:]})
	if err != nil {
		return nil, wrap(fmt.Sprintf("list slots of %x", index[:]), err)
	}
	if r.SlotNums == nil {
		return []uint32{}, nil
	}
	return r.SlotNums, nil
}

// WriteSlot replaces a slot's value if its token is still expect ("" = it
// must not exist); storage.ErrConflict otherwise. It returns the new token.
func (c *Client) WriteSlot(ctx context.Context, ref storage.Ref, expect string, value, leaseSecret []byte) (string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.WriteSlot(ctx, &pb.WriteSlotRequest{StorageIndex: ref.Index[:], SlotNum: ref.Num, ExpectToken: expect, Value: value, LeaseSecret: leaseSecret})
	if err != nil {
		return "", wrap("write slot "+ref.String(), err)
	}
	return r.Token, nil
}

// RenewLease adds or extends this lease secret's lease on a storage index
// and returns when it expires (storage.ErrNotFound if the server holds
// nothing for the index).
func (c *Client) RenewLease(ctx context.Context, index [storage.StorageIndexSize]byte, leaseSecret []byte) (time.Time, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.RenewLease(ctx, &pb.RenewLeaseRequest{StorageIndex: index[:], LeaseSecret: leaseSecret})
	if err != nil {
		return time.Time{}, wrap(fmt.Sprintf("renew lease on %x", index[:]), err)
	}
	return time.Unix(r.ExpiresUnix, 0), nil
}

// AdviseCorruption tells the server one of its shares (or slots) failed a
// check.
func (c *Client) AdviseCorruption(ctx context.Context, ref storage.Ref, slot bool, reason string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.rpc.AdviseCorruption(ctx, &pb.AdviseCorruptionRequest{StorageIndex: ref.Index[:], ShareNum: ref.Num, Slot: slot, Reason: reason})
	return wrap("advise corruption of "+ref.String(), err)
}

// AdviseCorruptionCap tells the server an immutable share failed a check
// and gives it the file's verify cap, so the server can check the share
// itself; it reports whether the server found the share corrupt and
// removed it (a server that predates the field just logs the advice).
func (c *Client) AdviseCorruptionCap(ctx context.Context, ref storage.Ref, verifyCap, reason string) (bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.AdviseCorruption(ctx, &pb.AdviseCorruptionRequest{StorageIndex: ref.Index[:], ShareNum: ref.Num, Reason: reason, VerifyCap: verifyCap})
	if err != nil {
		return false, wrap("advise corruption of "+ref.String(), err)
	}
	return r.Removed, nil
}

// sentinelOf maps protocol codes back to the errors callers branch on.
var sentinelOf = map[codes.Code]error{
	codes.NotFound:           storage.ErrNotFound,
	codes.AlreadyExists:      storage.ErrExists,
	codes.ResourceExhausted:  storage.ErrNoSpace,
	codes.Aborted:            storage.ErrConflict,
	codes.OutOfRange:         storage.ErrRange,
	codes.FailedPrecondition: storage.ErrClosed,
	codes.PermissionDenied:   nodelink.ErrNotMember,
	codes.DeadlineExceeded:   context.DeadlineExceeded,
	codes.Canceled:           context.Canceled,
	codes.Unavailable:        ErrBusy,
	codes.Unimplemented:      errors.ErrUnsupported, // a call the server predates
}

// remoteError carries the server's message and unwraps to a sentinel.
type remoteError struct {
	op, msg  string
	sentinel error
}

func (e *remoteError) Error() string { return e.op + ": " + e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &remoteError{op: op, msg: st.Message(), sentinel: sentinelOf[st.Code()]}
}
