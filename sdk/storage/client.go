package storage

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// fastChunk bounds the arena a single call takes, so that one large write
// cannot starve every other caller of shared memory.
const fastChunk = 8 << 20

// Client is the host's view of a storage plugin process: a Backend (and
// Indexer, and pluginkit.Configurer) whose calls are RPCs.
type Client struct {
	rpc      storagepb.StorageClient
	arena    *dataplane.Arena // nil unless the plugin mapped it
	info     *storagepb.InfoResponse
	detach   context.CancelFunc
	indexing bool
}

var (
	_ Backend              = (*Client)(nil)
	_ Indexer              = (*Client)(nil)
	_ Putter               = (*Client)(nil)
	_ pluginkit.Configurer = (*Client)(nil)
)

// NewClient asks the plugin what it is and whether it mapped the arena,
// and holds an Attach stream open for as long as the connection lives.
// arena is the host's arena, or nil for the gRPC-only path.
func NewClient(ctx context.Context, rpc storagepb.StorageClient, arena *dataplane.Arena) (*Client, error) {
	info, err := rpc.Info(ctx, &storagepb.InfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("storage plugin info: %w", fromStatus(err))
	}
	if info.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("storage plugin speaks protocol v%d, this tarn speaks v%d", info.Protocol, ProtocolVersion)
	}
	c := &Client{rpc: rpc, info: info, indexing: info.Indexes}
	if arena != nil && info.Arena {
		c.arena = arena
	}
	actx, cancel := context.WithCancel(context.Background())
	c.detach = cancel
	if st, err := rpc.Attach(actx, &storagepb.Empty{}); err == nil {
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
	}
	return c, nil
}

// FastPath reports whether payloads go through shared memory.
func (c *Client) FastPath() bool { return c.arena != nil }

// ArenaError is why the plugin could not map an offered arena, if it could not.
func (c *Client) ArenaError() string { return c.info.ArenaError }

// Close ends the Attach stream: the plugin aborts writers left open.
func (c *Client) Close() error { c.detach(); return nil }

func pbRef(r Ref) *storagepb.Ref { return &storagepb.Ref{Index: r.Index[:], Num: r.Num} }

func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.rpc.Info(ctx, &storagepb.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(err)
	}
	return Info{Name: r.Name, Version: r.Version}, nil
}

// Configure hands the plugin its settings (a JSON object).
func (c *Client) Configure(ctx context.Context, settingsJSON []byte) error {
	_, err := c.rpc.Configure(ctx, &storagepb.ConfigureRequest{SettingsJson: settingsJSON})
	if err != nil {
		return fmt.Errorf("configure storage plugin: %w", fromStatus(err))
	}
	return nil
}

func (c *Client) Space(ctx context.Context) (Space, error) {
	r, err := c.rpc.Space(ctx, &storagepb.Empty{})
	if err != nil {
		return Space{}, fromStatus(err)
	}
	return Space{Total: r.Total, Free: r.Free}, nil
}

func (c *Client) Create(ctx context.Context, ref Ref, size int64) (Writer, error) {
	r, err := c.rpc.Create(ctx, &storagepb.CreateRequest{Ref: pbRef(ref), Size: size})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &remoteWriter{c: c, h: r.Handle}, nil
}

// Put stores a whole share with one RPC. A plugin that predates Put (its
// Info says so) gives an error wrapping errors.ErrUnsupported, and so does
// a share too large for one call; storage.Put then falls back to Create.
func (c *Client) Put(ctx context.Context, ref Ref, data []byte) error {
	if !c.info.Put {
		return fmt.Errorf("put share %s: plugin predates Put: %w", ref, errors.ErrUnsupported)
	}
	req := &storagepb.PutRequest{Ref: pbRef(ref)}
	if c.arena != nil && len(data) > 0 && len(data) <= fastChunk {
		if o, ok := c.arena.Offset(data); ok {
			req.Payload = &storagepb.PutRequest_Region{Region: &storagepb.Region{Off: int64(o), Len: int64(len(data))}}
			_, err := c.rpc.Put(ctx, req)
			return fromStatus(err)
		}
		if rg, ok := c.alloc(len(data)); ok && len(rg.Bytes) == len(data) {
			copy(rg.Bytes, data)
			req.Payload = &storagepb.PutRequest_Region{Region: &storagepb.Region{Off: int64(rg.Off), Len: int64(len(data))}}
			_, err := c.rpc.Put(ctx, req)
			c.release(rg, err)
			return fromStatus(err)
		} else if ok {
			c.arena.Free(rg)
		}
	}
	if len(data) > pluginkit.ChunkSize {
		return fmt.Errorf("put share %s: %d bytes, more than one call carries: %w", ref, len(data), errors.ErrUnsupported)
	}
	req.Payload = &storagepb.PutRequest_Data{Data: data}
	_, err := c.rpc.Put(ctx, req)
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("put share %s: plugin predates Put: %w", ref, errors.ErrUnsupported)
	}
	return fromStatus(err)
}

func (c *Client) Stat(ctx context.Context, ref Ref) (int64, error) {
	r, err := c.rpc.Stat(ctx, pbRef(ref))
	if err != nil {
		return 0, fromStatus(err)
	}
	return r.Size, nil
}

// alloc takes an arena region of up to n bytes, or reports that the
// caller should fall back to bytes over gRPC.
func (c *Client) alloc(n int) (dataplane.Region, bool) {
	rg, err := c.arena.Alloc(min(n, fastChunk))
	return rg, err == nil
}

// release frees a region unless the call that used it ended ambiguously.
func (c *Client) release(rg dataplane.Region, err error) {
	if err == nil || !ambiguous(err) {
		c.arena.Free(rg)
	}
}

func (c *Client) ReadAt(ctx context.Context, ref Ref, p []byte, off int64) (int, error) {
	total := 0
	for len(p) > 0 {
		n, eof, err := c.readOnce(ctx, ref, p, off)
		total += n
		if err != nil {
			return total, err
		}
		if eof {
			return total, io.EOF
		}
		if n == 0 {
			return total, fmt.Errorf("read share %s at %d: plugin returned no bytes", ref, off)
		}
		p, off = p[n:], off+int64(n)
	}
	return total, nil
}

// readOnce reads a prefix of p with one RPC, by the fastest path open.
func (c *Client) readOnce(ctx context.Context, ref Ref, p []byte, off int64) (int, bool, error) {
	if c.arena != nil {
		if o, ok := c.arena.Offset(p); ok {
			r, err := c.rpc.ReadAt(ctx, &storagepb.ReadAtRequest{Ref: pbRef(ref), Off: off,
				Region: &storagepb.Region{Off: int64(o), Len: int64(len(p))}})
			if err != nil {
				return 0, false, fromStatus(err)
			}
			return clampN(r.N, len(p)), r.Eof, nil
		}
		if rg, ok := c.alloc(len(p)); ok {
			r, err := c.rpc.ReadAt(ctx, &storagepb.ReadAtRequest{Ref: pbRef(ref), Off: off,
				Region: &storagepb.Region{Off: int64(rg.Off), Len: int64(len(rg.Bytes))}})
			if err != nil {
				c.release(rg, err)
				return 0, false, fromStatus(err)
			}
			n := copy(p, rg.Bytes[:clampN(r.N, len(rg.Bytes))])
			c.arena.Free(rg)
			return n, r.Eof, nil
		}
	}
	want := min(len(p), pluginkit.ChunkSize)
	r, err := c.rpc.ReadAt(ctx, &storagepb.ReadAtRequest{Ref: pbRef(ref), Off: off, Len: int64(want)})
	if err != nil {
		return 0, false, fromStatus(err)
	}
	n := copy(p[:want], r.Data)
	return n, r.Eof, nil
}

func clampN(n int64, max int) int {
	if n < 0 {
		return 0
	}
	if n > int64(max) {
		return max
	}
	return int(n)
}

func (c *Client) List(ctx context.Context, index [StorageIndexSize]byte) ([]uint32, error) {
	r, err := c.rpc.List(ctx, &storagepb.ListRequest{Index: index[:]})
	if err != nil {
		return nil, fromStatus(err)
	}
	if r.Nums == nil {
		return []uint32{}, nil
	}
	return r.Nums, nil
}

func (c *Client) Delete(ctx context.Context, ref Ref) error {
	_, err := c.rpc.Delete(ctx, pbRef(ref))
	return fromStatus(err)
}

func (c *Client) ReadSlot(ctx context.Context, ref Ref) ([]byte, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.rpc.ReadSlot(ctx, pbRef(ref))
	if err != nil {
		return nil, "", fromStatus(err)
	}
	var val []byte
	var tok string
	for first := true; ; first = false {
		m, err := st.Recv()
		if err == io.EOF {
			if first {
				return nil, "", fmt.Errorf("read slot %s: plugin sent no token", ref)
			}
			return val, tok, nil
		}
		if err != nil {
			return nil, "", fromStatus(err)
		}
		if first {
			tok = m.Token
		}
		val = append(val, m.Data...)
	}
}

func (c *Client) WriteSlot(ctx context.Context, ref Ref, expect string, value []byte) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.rpc.WriteSlot(ctx)
	if err != nil {
		return "", fromStatus(err)
	}
	first := &storagepb.WriteSlotChunk{Ref: pbRef(ref), Expect: expect}
	n := min(len(value), pluginkit.ChunkSize)
	first.Data, value = value[:n], value[n:]
	if err := st.Send(first); err != nil && err != io.EOF {
		return "", fromStatus(err)
	}
	for len(value) > 0 {
		n := min(len(value), pluginkit.ChunkSize)
		if err := st.Send(&storagepb.WriteSlotChunk{Data: value[:n]}); err != nil {
			break // the real error comes from CloseAndRecv
		}
		value = value[n:]
	}
	r, err := st.CloseAndRecv()
	if err != nil {
		return "", fromStatus(err)
	}
	return r.Token, nil
}

// ListSlots returns the slot numbers of a storage index, sorted. A plugin
// built before the call existed gives an error wrapping
// errors.ErrUnsupported.
func (c *Client) ListSlots(ctx context.Context, index [StorageIndexSize]byte) ([]uint32, error) {
	r, err := c.rpc.ListSlots(ctx, &storagepb.ListRequest{Index: index[:]})
	if status.Code(err) == codes.Unimplemented {
		return nil, fmt.Errorf("list slots of %x: plugin predates ListSlots: %w", index[:], errors.ErrUnsupported)
	}
	if err != nil {
		return nil, fromStatus(err)
	}
	if r.Nums == nil {
		return []uint32{}, nil
	}
	return r.Nums, nil
}

// Indexes streams the plugin's storage indexes; an error wrapping
// errors.ErrUnsupported if the backend cannot enumerate them.
func (c *Client) Indexes(ctx context.Context, fn func(index [StorageIndexSize]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.rpc.Indexes(ctx, &storagepb.Empty{})
	if err != nil {
		return indexesErr(err)
	}
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return indexesErr(err)
		}
		for _, b := range m.Indexes {
			if len(b) != StorageIndexSize {
				return fmt.Errorf("list storage indexes: plugin sent one of %d bytes", len(b))
			}
			var idx [StorageIndexSize]byte
			copy(idx[:], b)
			if err := fn(idx); err != nil {
				return err
			}
		}
	}
}

func indexesErr(err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("list storage indexes: %w", errors.ErrUnsupported)
	}
	return fromStatus(err)
}

// remoteWriter is a Writer whose share lives in the plugin, by handle.
type remoteWriter struct {
	c *Client
	h uint64
}

func (w *remoteWriter) WriteAt(ctx context.Context, p []byte, off int64) error {
	c := w.c
	if c.arena != nil {
		if o, ok := c.arena.Offset(p); ok {
			_, err := c.rpc.WriteAt(ctx, &storagepb.WriteAtRequest{Handle: w.h, Off: off,
				Payload: &storagepb.WriteAtRequest_Region{Region: &storagepb.Region{Off: int64(o), Len: int64(len(p))}}})
			return fromStatus(err)
		}
	}
	for first := true; first || len(p) > 0; first = false {
		n, err := w.writeOnce(ctx, p, off)
		if err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// writeOnce writes a prefix of p with one RPC: through a fresh arena
// region if one is free, else as bytes.
func (w *remoteWriter) writeOnce(ctx context.Context, p []byte, off int64) (int, error) {
	c := w.c
	if c.arena != nil && len(p) > 0 {
		if rg, ok := c.alloc(len(p)); ok {
			n := copy(rg.Bytes, p)
			_, err := c.rpc.WriteAt(ctx, &storagepb.WriteAtRequest{Handle: w.h, Off: off,
				Payload: &storagepb.WriteAtRequest_Region{Region: &storagepb.Region{Off: int64(rg.Off), Len: int64(n)}}})
			c.release(rg, err)
			return n, fromStatus(err)
		}
	}
	n := min(len(p), pluginkit.ChunkSize)
	_, err := c.rpc.WriteAt(ctx, &storagepb.WriteAtRequest{Handle: w.h, Off: off,
		Payload: &storagepb.WriteAtRequest_Data{Data: p[:n]}})
	return n, fromStatus(err)
}

func (w *remoteWriter) Seal(ctx context.Context) error {
	_, err := w.c.rpc.Seal(ctx, &storagepb.HandleRequest{Handle: w.h})
	return fromStatus(err)
}

func (w *remoteWriter) Abort(ctx context.Context) error {
	_, err := w.c.rpc.Abort(ctx, &storagepb.HandleRequest{Handle: w.h})
	return fromStatus(err)
}
