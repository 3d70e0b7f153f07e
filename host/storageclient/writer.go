package storageclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// ShareWriter writes one allocated share. It buffers contiguous writes into
// chunks of Options.ChunkSize and streams them, so many small writes cost
// few messages; a write at another offset flushes first. Nothing is
// visible to readers until Seal returns. Not safe for concurrent use.
type ShareWriter struct {
	c      *Client
	ref    storage.Ref
	handle []byte
	size   int64

	// buf is the chunk being filled (nil: none), lent to gRPC at each
	// send; one of capacity c.chunks.size came from c.chunks.
	buf    *[]byte
	bufOff int64

	stream grpc.ClientStreamingClient[writeChunk, pb.WriteShareResponse]
	cancel context.CancelFunc
	dog    *watchdog
	done   bool
}

var _ storage.Writer = (*ShareWriter)(nil)

// Ref names the share being written.
func (w *ShareWriter) Ref() storage.Ref { return w.ref }

// Size is the share's size given to Allocate.
func (w *ShareWriter) Size() int64 { return w.size }

func (w *ShareWriter) obj() string { return fmt.Sprintf("share %d of %x", w.ref.Num, w.ref.Index[:]) }

// WriteAt writes p at off (buffered). off+len(p) must not pass the size.
func (w *ShareWriter) WriteAt(ctx context.Context, p []byte, off int64) error {
	if w.done {
		return fmt.Errorf("write %s: %w", w.obj(), storage.ErrClosed)
	}
	if off < 0 || off+int64(len(p)) > w.size {
		return fmt.Errorf("write %s: %d bytes at %d pass size %d: %w", w.obj(), len(p), off, w.size, storage.ErrRange)
	}
	if w.buffered() > 0 && off != w.bufOff+int64(w.buffered()) {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	if w.buffered() == 0 {
		w.bufOff = off
	}
	chunk := w.c.opts.ChunkSize
	for len(p) > 0 {
		if w.buf == nil {
			// A pooled chunk, or one sized to what is left of the share:
			// a small share must not cost a 1 MiB allocation (and its
			// zeroing) per write.
			w.buf = w.c.chunks.take(int(min(int64(chunk), w.size-w.bufOff)))
		}
		n := min(len(p), chunk-len(*w.buf))
		*w.buf = append(*w.buf, p[:n]...)
		p = p[n:]
		if len(*w.buf) == chunk {
			if err := w.flush(ctx); err != nil {
				return err
			}
			w.bufOff += int64(chunk)
		}
	}
	return nil
}

func (w *ShareWriter) buffered() int {
	if w.buf == nil {
		return 0
	}
	return len(*w.buf)
}

// flush sends the buffer, opening the stream on first use. A send that
// makes no progress for CallTimeout (a stalled server) fails.
func (w *ShareWriter) flush(ctx context.Context) error {
	if w.buffered() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %s: %w", w.obj(), err)
	}
	if w.stream == nil {
		sctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		w.dog = newWatchdog(w.c.opts.CallTimeout, cancel)
		st, err := w.c.cc.NewStream(sctx, writeShareDesc, pb.StorageServer_WriteShare_FullMethodName, useCodec)
		w.dog.stop()
		if err != nil {
			w.closeStream()
			return wrap("write "+w.obj(), err)
		}
		w.stream = &grpc.GenericClientStream[writeChunk, pb.WriteShareResponse]{ClientStream: st}
	}
	// The caller's ctx ends the stream too while we wait on it; the
	// watchdog runs only while we wait, so a caller that pauses between
	// writes is not taken for a stalled server.
	stopAfter := context.AfterFunc(ctx, w.cancel)
	w.dog.kick()
	// The chunk is gRPC's from here on (even if the send fails): the
	// codec sends it without a copy and puts it back in the pool once it
	// is on the wire.
	m := &writeChunk{handle: w.handle, offset: w.bufOff, data: w.buf}
	if w.c.chunks.owns(w.buf) {
		m.pool = w.c.chunks
	}
	w.buf = nil
	err := w.stream.Send(m)
	w.dog.stop()
	stopAfter()
	if err != nil {
		// The real reason is in the stream's status.
		_, rerr := w.stream.CloseAndRecv()
		if rerr == nil {
			rerr = err
		}
		dog := w.dog
		w.closeStream()
		return wrap("write "+w.obj(), dog.explain(rerr))
	}
	return nil
}

func (w *ShareWriter) closeStream() {
	if w.dog != nil {
		w.dog.stop()
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.stream, w.cancel, w.dog = nil, nil, nil
}

// Seal flushes, ends the stream and seals the share: after it returns nil
// the share is durable and visible.
func (w *ShareWriter) Seal(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("seal %s: %w", w.obj(), storage.ErrClosed)
	}
	if err := w.flush(ctx); err != nil {
		w.Abort(context.WithoutCancel(ctx))
		return err
	}
	if w.stream != nil {
		stopAfter := context.AfterFunc(ctx, w.cancel)
		w.dog.kick()
		_, err := w.stream.CloseAndRecv()
		stopAfter()
		dog := w.dog
		w.closeStream()
		if err != nil {
			w.Abort(context.WithoutCancel(ctx))
			return wrap("write "+w.obj(), dog.explain(err))
		}
	}
	w.done = true
	cctx, cancel := w.c.call(ctx)
	defer cancel()
	if _, err := w.c.rpc.Seal(cctx, &pb.SealRequest{Handle: w.handle}); err != nil {
		return wrap("seal "+w.obj(), err)
	}
	return nil
}

// Abort discards the share. Aborting twice is harmless.
func (w *ShareWriter) Abort(ctx context.Context) error {
	if w.done {
		return nil
	}
	w.done = true
	if w.buf != nil {
		w.c.chunks.Put(w.buf) // never sent: still ours (Put drops one not pooled)
	}
	w.buf = nil
	w.closeStream()
	cctx, cancel := w.c.call(ctx)
	defer cancel()
	if _, err := w.c.rpc.Abort(cctx, &pb.AbortRequest{Handle: w.handle}); err != nil {
		return wrap("abort "+w.obj(), err)
	}
	return nil
}

var writeShareDesc = streamDesc("WriteShare")

// watchdog cancels a stream that makes no progress for a while and
// remembers that it did, so the error can say so.
type watchdog struct {
	d     time.Duration
	t     *time.Timer
	mu    sync.Mutex
	fired bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.mu.Lock()
		w.fired = true
		w.mu.Unlock()
		cancel()
	})
	return w
}

func (w *watchdog) kick() { w.t.Reset(w.d) }
func (w *watchdog) stop() { w.t.Stop() }

// explain replaces a cancellation caused by the watchdog with a clear
// timeout error.
func (w *watchdog) explain(err error) error {
	w.mu.Lock()
	fired := w.fired
	w.mu.Unlock()
	if fired {
		return fmt.Errorf("server made no progress for %s: %w", w.d, context.DeadlineExceeded)
	}
	return err
}
