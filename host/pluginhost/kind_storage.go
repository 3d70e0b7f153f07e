package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

func init() {
	sentinels = append(sentinels, storage.ErrNotFound, storage.ErrExists, storage.ErrNoSpace,
		storage.ErrConflict, storage.ErrRange, storage.ErrClosed)
	kinds[pluginkit.KindStorage] = kindDef{
		version:   storage.ProtocolVersion,
		newPlugin: storage.NewHostPlugin,
		check: func(raw any) error {
			if _, ok := raw.(storage.Backend); !ok {
				return fmt.Errorf("dispensed a %T, not a storage backend", raw)
			}
			return nil
		},
		info: func(ctx context.Context, raw any) (string, error) {
			in, err := raw.(storage.Backend).Info(ctx)
			return in.Version, err
		},
		release: func(raw any) {
			if c, ok := raw.(interface{ Close() error }); ok {
				c.Close()
			}
		},
	}
}

// Storage is the supervised storage backend. Shares and slots live in the
// backend, not in the process, so a restart loses nothing already sealed; a
// Writer opened on a process that has since died fails with
// storage.ErrClosed (and ErrPluginDied) and its share must be written again.
type Storage struct{ s *supervisor }

var (
	_ storage.Indexer = (*Storage)(nil)
	_ storage.Opener  = (*Storage)(nil)
)

func backend(raw any) storage.Backend { return raw.(storage.Backend) }

func (b *Storage) Info(ctx context.Context) (storage.Info, error) {
	var in storage.Info
	err := b.s.call(ctx, func(raw any) (err error) { in, err = backend(raw).Info(ctx); return err })
	return in, err
}

func (b *Storage) Space(ctx context.Context) (storage.Space, error) {
	var sp storage.Space
	err := b.s.call(ctx, func(raw any) (err error) { sp, err = backend(raw).Space(ctx); return err })
	return sp, err
}

func (b *Storage) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	p, err := b.s.get(ctx)
	if err != nil {
		return nil, err
	}
	defer b.s.release(p)
	w, err := backend(p.raw).Create(ctx, ref, size)
	if err != nil {
		if isKindSentinel(err) {
			return nil, err
		}
		return nil, b.s.died(p, err)
	}
	return &writer{s: b.s, p: p, w: w, ref: ref}, nil
}

func (b *Storage) Stat(ctx context.Context, ref storage.Ref) (int64, error) {
	var n int64
	err := b.s.call(ctx, func(raw any) (err error) { n, err = backend(raw).Stat(ctx, ref); return err })
	return n, err
}

func (b *Storage) ReadAt(ctx context.Context, ref storage.Ref, p []byte, off int64) (int, error) {
	var n int
	var eof error
	err := b.s.call(ctx, func(raw any) (err error) {
		n, err = backend(raw).ReadAt(ctx, ref, p, off)
		if errors.Is(err, io.EOF) {
			eof, err = err, nil // an answer, not a failure
		}
		return err
	})
	if err != nil {
		return n, err
	}
	return n, eof
}

// Open hands over a sealed share's file when the plugin can (the disk
// backend on the fast path), else an error wrapping
// errors.ErrUnsupported: an answer, not a sign that the process died. A
// file handed by a process that has since died still reads the sealed
// share.
func (b *Storage) Open(ctx context.Context, ref storage.Ref) (*os.File, int64, error) {
	var f *os.File
	var size int64
	var unsupported error
	err := b.s.call(ctx, func(raw any) (err error) {
		o, ok := raw.(storage.Opener)
		if !ok {
			unsupported = fmt.Errorf("open share %s: %w", ref, errors.ErrUnsupported)
			return nil
		}
		f, size, err = o.Open(ctx, ref)
		if errors.Is(err, errors.ErrUnsupported) {
			unsupported, err = err, nil
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if unsupported != nil {
		return nil, 0, unsupported
	}
	return f, size, nil
}

func (b *Storage) List(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	var l []uint32
	err := b.s.call(ctx, func(raw any) (err error) { l, err = backend(raw).List(ctx, index); return err })
	return l, err
}

func (b *Storage) Delete(ctx context.Context, ref storage.Ref) error {
	return b.s.call(ctx, func(raw any) error { return backend(raw).Delete(ctx, ref) })
}

func (b *Storage) ReadSlot(ctx context.Context, ref storage.Ref) ([]byte, string, error) {
	var v []byte
	var tok string
	err := b.s.call(ctx, func(raw any) (err error) { v, tok, err = backend(raw).ReadSlot(ctx, ref); return err })
	return v, tok, err
}

func (b *Storage) WriteSlot(ctx context.Context, ref storage.Ref, expect string, value []byte) (string, error) {
	var tok string
	err := b.s.call(ctx, func(raw any) (err error) { tok, err = backend(raw).WriteSlot(ctx, ref, expect, value); return err })
	return tok, err
}

// Indexes enumerates storage indexes when the backend can
// (errors.ErrUnsupported otherwise).
func (b *Storage) Indexes(ctx context.Context, fn func(index [storage.StorageIndexSize]byte) error) error {
	return b.s.call(ctx, func(raw any) error {
		ix, ok := raw.(storage.Indexer)
		if !ok {
			return fmt.Errorf("list storage indexes: %w", errors.ErrUnsupported)
		}
		return ix.Indexes(ctx, fn)
	})
}

// writer is a Writer bound to the process that created it: its handle
// means nothing to a restarted process, so it is never re-routed.
type writer struct {
	s   *supervisor
	p   *proc
	w   storage.Writer
	ref storage.Ref
}

// use holds w's process for one call, or says it is gone.
func (w *writer) use() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.closed {
		return fmt.Errorf("share %s: %w: %w", w.ref, storage.ErrClosed, ErrClosed)
	}
	if w.s.cur != w.p || w.p.dead() {
		return w.gone()
	}
	w.p.inflight.Add(1)
	return nil
}

func (w *writer) gone() error {
	return fmt.Errorf("share %s: %w: %w (pid %d): write the share again", w.ref, storage.ErrClosed, ErrPluginDied, w.p.p.Pid)
}

func (w *writer) do(f func() error) error {
	if err := w.use(); err != nil {
		return err
	}
	defer w.s.release(w.p)
	err := f()
	if errors.Is(err, storage.ErrPluginGone) {
		// A handed file noticed the process end before the supervisor.
		return w.gone()
	}
	if err != nil && !isKindSentinel(err) {
		if derr := w.s.died(w.p, err); errors.Is(derr, ErrPluginDied) {
			return fmt.Errorf("%w: %w", w.gone(), err)
		}
	}
	return err
}

func (w *writer) WriteAt(ctx context.Context, p []byte, off int64) error {
	return w.do(func() error { return w.w.WriteAt(ctx, p, off) })
}

func (w *writer) Seal(ctx context.Context) error {
	return w.do(func() error { return w.w.Seal(ctx) })
}

func (w *writer) Abort(ctx context.Context) error {
	return w.do(func() error { return w.w.Abort(ctx) })
}

// ListSlots lists the slot numbers of a storage index. A plugin built
// before the call existed answers with errors.ErrUnsupported, which is an
// answer, not a sign that the process died.
func (b *Storage) ListSlots(ctx context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	var l []uint32
	var unsupported error
	err := b.s.call(ctx, func(raw any) (err error) {
		l, err = backend(raw).ListSlots(ctx, index)
		if errors.Is(err, errors.ErrUnsupported) {
			unsupported, err = err, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if unsupported != nil {
		return nil, unsupported
	}
	return l, nil
}

var _ storage.Putter = (*Storage)(nil)

// Put stores a whole share with one plugin call. A plugin that predates
// Put answers with errors.ErrUnsupported, which is an answer, not a sign
// that the process died; storage.Put then uses Create.
func (b *Storage) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	var unsupported error
	err := b.s.call(ctx, func(raw any) error {
		p, ok := raw.(storage.Putter)
		if !ok {
			unsupported = fmt.Errorf("put share %s: %w", ref, errors.ErrUnsupported)
			return nil
		}
		err := p.Put(ctx, ref, data)
		if errors.Is(err, errors.ErrUnsupported) {
			unsupported, err = err, nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return unsupported
}
