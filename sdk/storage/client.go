package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
	noBatch  atomic.Bool // the plugin answered PutBatch UNIMPLEMENTED

	mailbox  *dataplane.Mailbox // nil unless the plugin can hand over files
	useFiles atomic.Bool        // ask for share files at Create
	fdSeq    atomic.Uint64
	// attachLost is set once the Attach stream ends: the plugin has then
	// aborted (or lost) every writer, and files it handed over write
	// nowhere, so they refuse.
	attachLost atomic.Bool
	// live is the read end of a pipe whose write end only the plugin
	// process holds: it hangs up when the process ends.
	live *os.File
}

var (
	_ Backend              = (*Client)(nil)
	_ Indexer              = (*Client)(nil)
	_ Putter               = (*Client)(nil)
	_ Opener               = (*Client)(nil)
	_ pluginkit.Configurer = (*Client)(nil)
)

// NewClient asks the plugin what it is and whether it mapped the arena,
// and holds an Attach stream open for as long as the connection lives.
// arena is the host's arena, or nil for the gRPC-only path; mailbox the
// host's end of the fd channel, or nil (no handed files).
func NewClient(ctx context.Context, rpc storagepb.StorageClient, arena *dataplane.Arena, mailbox *dataplane.Mailbox) (*Client, error) {
	req := &storagepb.InfoRequest{}
	if mailbox != nil {
		req.LivenessFdId = 1 << 63 // never one of fdSeq's
	}
	info, err := rpc.Info(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("storage plugin info: %w", fromStatus(err))
	}
	var live *os.File
	if info.LivenessFdId != 0 && info.LivenessFdId == req.LivenessFdId {
		tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		live, err = mailbox.Take(tctx, info.LivenessFdId)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("storage plugin info: take its liveness pipe: %w", err)
		}
	}
	if info.Protocol != ProtocolVersion {
		if live != nil {
			live.Close()
		}
		return nil, fmt.Errorf("storage plugin speaks protocol v%d, this tarn speaks v%d", info.Protocol, ProtocolVersion)
	}
	c := &Client{rpc: rpc, info: info, indexing: info.Indexes}
	if arena != nil && info.Arena {
		c.arena = arena
	}
	actx, cancel := context.WithCancel(context.Background())
	c.detach = cancel
	st, err := rpc.Attach(actx, &storagepb.Empty{})
	if err == nil {
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					c.attachLost.Store(true)
					return
				}
			}
		}()
	}
	// Without an Attach stream a plugin death could not be noticed before
	// Seal, so files are handed only with one.
	if mailbox != nil && info.Files && live != nil && err == nil {
		c.mailbox = mailbox
		c.live = live
		c.useFiles.Store(true)
	} else if live != nil {
		live.Close()
	}
	return c, nil
}

// Files reports whether writers take the share's file from the plugin
// (and write it with pwrite) when the backend has one.
func (c *Client) Files() bool { return c.mailbox != nil && c.useFiles.Load() }

// UseFiles turns handed files off (or back on, if the plugin offers
// them) for writers created from now on; tests use it to run the arena
// path against a plugin that could hand files.
func (c *Client) UseFiles(on bool) { c.useFiles.Store(on && c.mailbox != nil) }

// FastPath reports whether payloads go through shared memory.
func (c *Client) FastPath() bool { return c.arena != nil }

// ArenaError is why the plugin could not map an offered arena, if it could not.
func (c *Client) ArenaError() string { return c.info.ArenaError }

// Close ends the Attach stream: the plugin aborts writers left open, and
// writers on handed files refuse from now on (the liveness pipe is
// closed, which reads as "gone").
func (c *Client) Close() error {
	c.detach()
	if c.live != nil {
		c.live.Close()
	}
	return nil
}

// pluginGone reports whether the plugin process has ended (or detached),
// without an RPC: its end of the liveness pipe is closed, or the Attach
// stream broke.
func (c *Client) pluginGone() bool {
	if c.attachLost.Load() {
		return true
	}
	rc, err := c.live.SyscallConn()
	if err != nil {
		return true
	}
	gone := true
	rc.Control(func(fd uintptr) { gone = hungUp(fd) })
	return gone
}

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
	req := &storagepb.CreateRequest{Ref: pbRef(ref), Size: size}
	if c.Files() {
		req.FdId = c.fdSeq.Add(1)
	}
	r, err := c.rpc.Create(ctx, req)
	if err != nil {
		if req.FdId != 0 && ambiguous(err) {
			c.drop(req.FdId)
		}
		return nil, fromStatus(err)
	}
	w := &remoteWriter{c: c, h: r.Handle, ref: ref, size: size}
	if r.FdId != 0 {
		if r.FdId != req.FdId || c.mailbox == nil {
			if req.FdId != 0 {
				c.drop(req.FdId) // what it sent, if anything, is under our id
			}
			w.Abort(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("create share %s: plugin handed file %d, asked for %d", ref, r.FdId, req.FdId)
		}
		// The file was sent before the answer: wait for it even if ctx
		// ended meanwhile, or it would be left in the mailbox.
		tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		f, err := c.mailbox.Take(tctx, r.FdId)
		cancel()
		if err != nil {
			c.drop(r.FdId) // should it still come
			w.Abort(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("create share %s: take its file from the plugin: %w", ref, err)
		}
		w.f = f
	}
	return w, nil
}

// Open takes a sealed share's file from the plugin, read-only, and its
// size: the host then reads it with pread, no RPC or copy per read. An
// error wrapping errors.ErrUnsupported when the plugin cannot hand files.
func (c *Client) Open(ctx context.Context, ref Ref) (*os.File, int64, error) {
	if !c.Files() || !c.info.OpenFiles {
		return nil, 0, fmt.Errorf("open share %s: plugin hands no files: %w", ref, errors.ErrUnsupported)
	}
	id := c.fdSeq.Add(1)
	r, err := c.rpc.Open(ctx, &storagepb.OpenRequest{Ref: pbRef(ref), FdId: id})
	if err != nil {
		if ambiguous(err) {
			c.drop(id)
		}
		if status.Code(err) == codes.Unimplemented {
			return nil, 0, fmt.Errorf("open share %s: %w", ref, errors.ErrUnsupported)
		}
		return nil, 0, fromStatus(err)
	}
	if r.FdId != id {
		c.drop(id)
		return nil, 0, fmt.Errorf("open share %s: plugin answered file %d, asked for %d", ref, r.FdId, id)
	}
	tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.mailbox.Take(tctx, id)
	if err != nil {
		c.drop(id) // should it still come
		return nil, 0, fmt.Errorf("open share %s: take its file from the plugin: %w", ref, err)
	}
	return f, r.Size, nil
}

// drop closes a file the plugin may have sent for a Create or Open whose
// answer was lost (cancelled, timed out) or wrong, so it does not stay in
// the mailbox until the connection ends.
func (c *Client) drop(id uint64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if f, err := c.mailbox.Take(ctx, id); err == nil {
			f.Close()
		}
	}()
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
			return putErr(ref, err)
		}
		if rg, ok := c.alloc(len(data)); ok && len(rg.Bytes) == len(data) {
			copy(rg.Bytes, data)
			req.Payload = &storagepb.PutRequest_Region{Region: &storagepb.Region{Off: int64(rg.Off), Len: int64(len(data))}}
			_, err := c.rpc.Put(ctx, req)
			c.release(rg, err)
			return putErr(ref, err)
		} else if ok {
			c.arena.Free(rg)
		}
	}
	if len(data) > pluginkit.ChunkSize {
		return fmt.Errorf("put share %s: %d bytes, more than one call carries: %w", ref, len(data), errors.ErrUnsupported)
	}
	req.Payload = &storagepb.PutRequest_Data{Data: data}
	_, err := c.rpc.Put(ctx, req)
	return putErr(ref, err)
}

// putErr is the error of a Put RPC; UNIMPLEMENTED (a plugin that
// predates Put) wraps errors.ErrUnsupported on every path, so storage.Put
// falls back to Create.
func putErr(ref Ref, err error) error {
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
// With f (the share's file, handed over by the plugin) WriteAt is a
// pwrite here; Seal and Abort close f first, so no write of this process
// can land in a share once it is sealed.
type remoteWriter struct {
	c    *Client
	h    uint64
	ref  Ref
	size int64

	mu     sync.RWMutex // WriteAt holds it shared, Seal and Abort alone
	f      *os.File
	closed bool
}

func (w *remoteWriter) WriteAt(ctx context.Context, p []byte, off int64) error {
	w.mu.RLock()
	if w.f != nil || w.closed {
		defer w.mu.RUnlock()
		return w.writeFile(p, off)
	}
	w.mu.RUnlock()
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

// writeFile writes p at off straight to the share's file, bounded by the
// share's size (the file must never grow).
func (w *remoteWriter) writeFile(p []byte, off int64) error {
	if w.closed {
		return fmt.Errorf("write share %s: %w", w.ref, ErrClosed)
	}
	if off < 0 || off > w.size || int64(len(p)) > w.size-off {
		return fmt.Errorf("write share %s: %d bytes at %d of %d: %w", w.ref, len(p), off, w.size, ErrRange)
	}
	if w.c.pluginGone() {
		return fmt.Errorf("write share %s: %w, its handed file writes nowhere (write the share again): %w", w.ref, ErrPluginGone, ErrClosed)
	}
	if _, err := w.f.WriteAt(p, off); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("write share %s at %d: %w", w.ref, off, err)
	}
	return nil
}

// end closes the handed file, once every WriteAt on it has returned.
func (w *remoteWriter) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
		w.closed = true
	}
}

func (w *remoteWriter) Seal(ctx context.Context) error {
	w.end()
	_, err := w.c.rpc.Seal(ctx, &storagepb.HandleRequest{Handle: w.h})
	return fromStatus(err)
}

func (w *remoteWriter) Abort(ctx context.Context) error {
	w.end()
	_, err := w.c.rpc.Abort(ctx, &storagepb.HandleRequest{Handle: w.h})
	return fromStatus(err)
}
