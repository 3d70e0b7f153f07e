// Package storagememory is the "memory" storage backend: shares and slots
// held in the process's memory, lost when it exits. It is the fake that
// tests and the in-process test grid use, and the reference the
// conformance suite (sdk/storage/storagetest) is checked against.
package storagememory

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/tarnfs/tarn/sdk/storage"
)

// DefaultLimit is the space a Memory reports and enforces unless told otherwise.
const DefaultLimit = 1 << 30

// Memory keeps everything in maps under one lock.
type Memory struct {
	limit int64

	mu     sync.Mutex
	used   int64 // sealed bytes plus bytes reserved by open writers
	shares map[storage.Ref][]byte
	slots  map[storage.Ref]slot
	// slotNums lists each index's slot numbers (slots are never removed),
	// so that ListSlots does not walk every slot.
	slotNums map[[storage.StorageIndexSize]byte][]uint32
}

type slot struct {
	value []byte
	gen   uint64
}

var (
	_ storage.Backend = (*Memory)(nil)
	_ storage.Indexer = (*Memory)(nil)
)

// New returns an empty backend of DefaultLimit bytes.
func New() storage.Backend { return NewLimit(DefaultLimit) }

// NewLimit returns an empty backend that holds at most limit bytes of shares.
func NewLimit(limit int64) *Memory {
	return &Memory{limit: limit, shares: map[storage.Ref][]byte{}, slots: map[storage.Ref]slot{},
		slotNums: map[[storage.StorageIndexSize]byte][]uint32{}}
}

// Serve runs the memory backend as a plugin process (tarn plugin serve storage memory).
func Serve() { storage.Serve(New()) }

func (m *Memory) Info(context.Context) (storage.Info, error) {
	return storage.Info{Name: "memory", Version: "1.0.0"}, nil
}

func (m *Memory) Space(context.Context) (storage.Space, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return storage.Space{Total: m.limit, Free: m.limit - m.used}, nil
}

func (m *Memory) Create(_ context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	if size < 0 {
		return nil, fmt.Errorf("create share %s of %d bytes: %w", ref, size, storage.ErrRange)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.shares[ref]; ok {
		return nil, fmt.Errorf("create share %s: %w", ref, storage.ErrExists)
	}
	if size > m.limit-m.used {
		return nil, fmt.Errorf("create share %s of %d bytes with %d free: %w", ref, size, m.limit-m.used, storage.ErrNoSpace)
	}
	m.used += size
	return &writer{m: m, ref: ref, buf: make([]byte, size)}, nil
}

func (m *Memory) Stat(_ context.Context, ref storage.Ref) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.shares[ref]
	if !ok {
		return 0, fmt.Errorf("stat share %s: %w", ref, storage.ErrNotFound)
	}
	return int64(len(b)), nil
}

func (m *Memory) ReadAt(_ context.Context, ref storage.Ref, p []byte, off int64) (int, error) {
	m.mu.Lock()
	b, ok := m.shares[ref]
	m.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("read share %s: %w", ref, storage.ErrNotFound)
	}
	if off < 0 {
		return 0, fmt.Errorf("read share %s at %d: %w", ref, off, storage.ErrRange)
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:]) // sealed bytes never change: safe outside the lock
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *Memory) List(_ context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nums := []uint32{}
	for r := range m.shares {
		if r.Index == index {
			nums = append(nums, r.Num)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

func (m *Memory) Delete(_ context.Context, ref storage.Ref) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.shares[ref]
	if !ok {
		return fmt.Errorf("delete share %s: %w", ref, storage.ErrNotFound)
	}
	m.used -= int64(len(b))
	delete(m.shares, ref)
	return nil
}

func (m *Memory) ReadSlot(_ context.Context, ref storage.Ref) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.slots[ref]
	if !ok {
		return nil, "", fmt.Errorf("read slot %s: %w", ref, storage.ErrNotFound)
	}
	return slices.Clone(s.value), strconv.FormatUint(s.gen, 10), nil
}

func (m *Memory) WriteSlot(_ context.Context, ref storage.Ref, expect string, value []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.slots[ref]
	cur := ""
	if ok {
		cur = strconv.FormatUint(s.gen, 10)
	}
	if cur != expect {
		return "", fmt.Errorf("write slot %s: token %q is stale: %w", ref, expect, storage.ErrConflict)
	}
	if !ok {
		nums := m.slotNums[ref.Index]
		i, _ := slices.BinarySearch(nums, ref.Num)
		m.slotNums[ref.Index] = slices.Insert(nums, i, ref.Num)
	}
	s = slot{value: slices.Clone(value), gen: s.gen + 1}
	m.slots[ref] = s
	return strconv.FormatUint(s.gen, 10), nil
}

func (m *Memory) ListSlots(_ context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]uint32{}, m.slotNums[index]...), nil
}

// Indexes lists every storage index with a sealed share or a slot.
func (m *Memory) Indexes(ctx context.Context, fn func(index [storage.StorageIndexSize]byte) error) error {
	m.mu.Lock()
	seen := map[[storage.StorageIndexSize]byte]bool{}
	for r := range m.shares {
		seen[r.Index] = true
	}
	for r := range m.slots {
		seen[r.Index] = true
	}
	m.mu.Unlock()
	for idx := range seen {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(idx); err != nil {
			return err
		}
	}
	return nil
}

// writer fills a private buffer; Seal publishes it.
type writer struct {
	m   *Memory
	ref storage.Ref

	mu   sync.Mutex
	buf  []byte
	done bool
}

func (w *writer) WriteAt(_ context.Context, p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return fmt.Errorf("write share %s: %w", w.ref, storage.ErrClosed)
	}
	if off < 0 || off > int64(len(w.buf)) || int64(len(p)) > int64(len(w.buf))-off {
		return fmt.Errorf("write share %s: %d bytes at %d of %d: %w", w.ref, len(p), off, len(w.buf), storage.ErrRange)
	}
	copy(w.buf[off:], p)
	return nil
}

func (w *writer) Seal(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return fmt.Errorf("seal share %s: %w", w.ref, storage.ErrClosed)
	}
	w.done = true
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if _, ok := w.m.shares[w.ref]; ok {
		w.m.used -= int64(len(w.buf))
		return fmt.Errorf("seal share %s: %w", w.ref, storage.ErrExists)
	}
	w.m.shares[w.ref] = w.buf
	return nil
}

func (w *writer) Abort(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return fmt.Errorf("abort share %s: %w", w.ref, storage.ErrClosed)
	}
	w.done = true
	w.m.mu.Lock()
	w.m.used -= int64(len(w.buf))
	w.m.mu.Unlock()
	w.buf = nil
	return nil
}

var _ storage.Putter = (*Memory)(nil)

// Put stores a whole share in one call (storage.Putter).
func (m *Memory) Put(_ context.Context, ref storage.Ref, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.shares[ref]; ok {
		return fmt.Errorf("put share %s: %w", ref, storage.ErrExists)
	}
	if int64(len(data)) > m.limit-m.used {
		return fmt.Errorf("put share %s of %d bytes with %d free: %w", ref, len(data), m.limit-m.used, storage.ErrNoSpace)
	}
	m.used += int64(len(data))
	m.shares[ref] = append(make([]byte, 0, len(data)), data...)
	return nil
}

var _ storage.BatchPutter = (*Memory)(nil)

// PutBatch stores several whole shares in one call (storage.BatchPutter),
// each as Put does, each with its own outcome.
func (m *Memory) PutBatch(ctx context.Context, puts []storage.PutItem) ([]error, error) {
	if err := storage.CheckBatch(puts); err != nil {
		return nil, err
	}
	errs := make([]error, len(puts))
	for i, p := range puts {
		errs[i] = m.Put(ctx, p.Ref, p.Data)
	}
	return errs, nil
}
