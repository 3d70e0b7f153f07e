//go:build unix

// Package storagedisk is the "disk" storage backend: shares and slots kept
// as files under one folder, crash-safe (a share or slot value is either
// wholly there or not there after a crash at any moment).
//
// Layout under the folder (see docs/plugins-storage.md):
//
//	FORMAT                         "tarn-storage-disk 1"; 2 once packs/ exists, 3 once version 2 packs may, 4 once version 3 packs may
//	LOCK                           flock'd by the one process using the folder
//	tmp/                           files being written; emptied at start
//	shares/<ii>/<index>/<num>      sealed shares
//	packs/NNNNNNNN.pack            small shares given to Put, packed (pack.go)
//	slots/<ii>/<index>/<num>       slot values (header + value)
//
// <index> is the storage index in lower-case hex (32 digits), <ii> its
// first two digits, <num> the share number in decimal. Names are made by
// this package from fixed-size values, never taken from a caller, so no
// index can point outside the folder; names that do not parse are ignored.
package storagedisk

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
)

// formatLine is the FORMAT of a folder without packs; formatPackedV1
// that of one with version 1 packs only (docs/formats.md);
// formatPackedV2 that of one where version 2 packs may exist; formatPacked
// that of one where version 3 packs may, optionally followed by " after
// NNNNNNNN" (the last pack made before: it may be version 1 or 2). A tarn
// that cannot read packs must refuse a folder with them rather than lose
// the packed shares from sight, and one that reads only older packs must
// refuse newer ones: it would take them for damage and cut them.
const (
	formatLine     = "tarn-storage-disk 1\n"
	formatPackedV1 = "tarn-storage-disk 2\n"
	formatPackedV2 = "tarn-storage-disk 3\n"
	formatPacked   = "tarn-storage-disk 4\n"
)

// parseFormat parses a FORMAT this tarn reads: its version and, for 4,
// the last pack that may be older than version 3 (0: none).
func parseFormat(b string) (ver int, oldMax uint32, ok bool) {
	switch b {
	case formatLine:
		return 1, 0, true
	case formatPackedV1:
		return 2, 0, true
	case formatPackedV2:
		return 3, 0, true
	case formatPacked:
		return 4, 0, true
	}
	s, ok := strings.CutPrefix(b, "tarn-storage-disk 4 after ")
	if !ok {
		return 0, 0, false
	}
	n, ok := parsePackName(strings.TrimSuffix(s, "\n") + ".pack")
	if !ok || !strings.HasSuffix(s, "\n") {
		return 0, 0, false
	}
	return 4, n, true
}

// formatV4 is the FORMAT of a folder where version 3 packs may exist and
// packs up to oldMax may be older.
func formatV4(oldMax uint32) string {
	if oldMax == 0 {
		return formatPacked
	}
	return fmt.Sprintf("tarn-storage-disk 4 after %08d\n", oldMax)
}

// lastPack is the number of the last pack in packs folder dir (0: none).
func lastPack(dir string) (uint32, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list packs: %w", err)
	}
	var last uint32
	for _, e := range ents {
		if n, ok := parsePackName(e.Name()); ok {
			last = max(last, n)
		}
	}
	return last, nil
}

// Disk is a storage.Backend over a folder. It must be the only user of its
// folder; New takes an exclusive lock to make sure.
type Disk struct {
	dir  string
	lock *os.File

	// stripes serialise the visible changes (seal, delete, slot write) of
	// one storage index; different indexes proceed in parallel.
	seed    maphash.Seed
	stripes [64]sync.Mutex

	mu       sync.Mutex
	reserved int64 // sizes of open writers, not yet on disk

	opts    Options
	packMax int // Put packs shares of up to this many bytes
	// pack holds the packed shares; nil when the folder has no packs/
	// (packing off and never on).
	pack *packStore
}

// Options tune a Disk; the zero value is the default.
type Options struct {
	// NoPack keeps every new share in a file of its own; packed shares
	// already in the folder are still read, listed and deleted.
	NoPack bool
}

var (
	_ storage.Backend = (*Disk)(nil)
	_ storage.Indexer = (*Disk)(nil)
)

// New opens (creating if needed) the backend folder dir with the default
// options (small shares packed), locks it, and removes files a crash left
// in tmp/.
func New(dir string) (*Disk, error) { return NewOptions(dir, Options{}) }

// NewOptions is New with options.
func NewOptions(dir string, opts Options) (*Disk, error) {
	if dir == "" {
		return nil, errors.New("storage disk: empty folder path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage disk folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("storage disk folder: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(abs, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage disk folder %s: %w", abs, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("storage disk folder %s is in use by another process: %w", abs, err)
	}
	d := &Disk{dir: abs, lock: lock, seed: maphash.MakeSeed(), opts: opts, packMax: maxPackShare}
	if err := d.init(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("storage disk folder %s: %w", abs, err)
	}
	return d, nil
}

func (d *Disk) init() error {
	fp := filepath.Join(d.dir, "FORMAT")
	b, err := os.ReadFile(fp)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := writeDurable(filepath.Join(d.dir, "tmp-FORMAT"), fp, []byte(formatLine)); err != nil {
			return err
		}
		b = []byte(formatLine)
	case err != nil:
		return err
	}
	ver, oldMax, ok := parseFormat(string(b))
	if !ok {
		return fmt.Errorf("FORMAT says %q, this tarn reads %q, %q, %q or %q", b, formatLine, formatPackedV1, formatPackedV2, formatPacked)
	}
	for _, sub := range []string{"tmp", "shares", "slots"} {
		if err := mkdirDurable(filepath.Join(d.dir, sub)); err != nil {
			return err
		}
	}
	// Whatever is in tmp/ was being written when a process died: it was
	// never sealed, so it is garbage.
	ents, err := os.ReadDir(d.tmp())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(d.tmp(), e.Name())); err != nil {
			return fmt.Errorf("remove leftover temp file: %w", err)
		}
	}
	// FORMAT says 4 before the first version 3 pack exists, so that no
	// older tarn ever opens a folder whose packed shares it cannot see.
	// With packing off a folder with packs gets it too: a Delete of a
	// packed share appends its tombstone to a new pack. It names the
	// last pack there before (which may be version 1 or 2): only a later
	// pack's header copy B is trusted alone (parsePackHeader).
	_, perr := os.Stat(filepath.Join(d.dir, "packs"))
	if (!d.opts.NoPack || perr == nil) && ver < 4 {
		if oldMax, err = lastPack(filepath.Join(d.dir, "packs")); err != nil {
			return err
		}
		if err := writeDurable(filepath.Join(d.dir, "tmp-FORMAT"), fp, []byte(formatV4(oldMax))); err != nil {
			return err
		}
	}
	p, err := openPacks(filepath.Join(d.dir, "packs"), !d.opts.NoPack, oldMax)
	if err != nil {
		return err
	}
	d.pack = p
	return nil
}

// Close closes the packs and releases the folder lock. Open writers must
// be ended first.
func (d *Disk) Close() error {
	if d.pack != nil {
		d.pack.close()
	}
	return d.lock.Close()
}

// Dir is the backend folder.
func (d *Disk) Dir() string { return d.dir }

func (d *Disk) tmp() string { return filepath.Join(d.dir, "tmp") }

func indexDir(root string, index [storage.StorageIndexSize]byte) string {
	h := hex.EncodeToString(index[:])
	return filepath.Join(root, h[:2], h)
}

func (d *Disk) sharePath(r storage.Ref) string {
	return filepath.Join(indexDir(filepath.Join(d.dir, "shares"), r.Index), strconv.FormatUint(uint64(r.Num), 10))
}

func (d *Disk) slotPath(r storage.Ref) string {
	return filepath.Join(indexDir(filepath.Join(d.dir, "slots"), r.Index), strconv.FormatUint(uint64(r.Num), 10))
}

func (d *Disk) stripe(index [storage.StorageIndexSize]byte) *sync.Mutex {
	return &d.stripes[maphash.Bytes(d.seed, index[:])%uint64(len(d.stripes))]
}

func (d *Disk) Info(context.Context) (storage.Info, error) {
	return storage.Info{Name: "disk", Version: "1.0.0"}, nil
}

func (d *Disk) Space(context.Context) (storage.Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil {
		return storage.Space{}, fmt.Errorf("statfs %s: %w", d.dir, err)
	}
	d.mu.Lock()
	res := d.reserved
	d.mu.Unlock()
	total := int64(st.Blocks) * int64(st.Bsize)
	free := max(0, int64(st.Bavail)*int64(st.Bsize)-res)
	return storage.Space{Total: total, Free: min(free, total)}, nil
}

func (d *Disk) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	if size < 0 {
		return nil, fmt.Errorf("create share %s of %d bytes: %w", ref, size, storage.ErrRange)
	}
	if _, err := os.Lstat(d.sharePath(ref)); err == nil || d.packed(ref) {
		return nil, fmt.Errorf("create share %s: %w", ref, storage.ErrExists)
	}
	sp, err := d.Space(ctx)
	if err != nil {
		return nil, fmt.Errorf("create share %s: %w", ref, err)
	}
	if size > sp.Free {
		return nil, fmt.Errorf("create share %s of %d bytes with %d free: %w", ref, size, sp.Free, storage.ErrNoSpace)
	}
	f, err := os.CreateTemp(d.tmp(), "share-*")
	if err != nil {
		return nil, fmt.Errorf("create share %s: %w", ref, err)
	}
	// The file has its final size from the start: bytes never written read
	// as zeros (holes), and WriteAt can never grow it.
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create share %s: %w", ref, err)
	}
	d.mu.Lock()
	d.reserved += size
	d.mu.Unlock()
	return &writer{d: d, ref: ref, size: size, f: f}, nil
}

func (d *Disk) Stat(_ context.Context, ref storage.Ref) (int64, error) {
	if d.pack != nil {
		if loc, _, ok := d.pack.find(ref); ok {
			return int64(loc.n), nil
		}
	}
	st, err := os.Lstat(d.sharePath(ref))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("stat share %s: %w", ref, storage.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat share %s: %w", ref, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("stat share %s: not a regular file", ref)
	}
	return st.Size(), nil
}

// Open opens a sealed share read-only (for a host that reads it itself).
func (d *Disk) Open(_ context.Context, ref storage.Ref) (*os.File, int64, error) {
	if d.pack != nil {
		var f *os.File
		var size int64
		if ok, err := d.withPacked(ref, func(pf *os.File, loc packLoc) (err error) {
			size = int64(loc.n)
			f, err = packedFile(pf, loc)
			return err
		}); ok {
			if err != nil {
				return nil, 0, fmt.Errorf("open share %s: %w", ref, err)
			}
			return f, size, nil
		}
	}
	f, err := os.OpenFile(d.sharePath(ref), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("open share %s: %w", ref, storage.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open share %s: %w", ref, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open share %s: %w", ref, err)
	}
	return f, st.Size(), nil
}

func (d *Disk) ReadAt(_ context.Context, ref storage.Ref, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read share %s at %d: %w", ref, off, storage.ErrRange)
	}
	if d.pack != nil {
		var n int
		if ok, err := d.withPacked(ref, func(pf *os.File, loc packLoc) (err error) {
			n, err = readPacked(pf, loc, p, off)
			return err
		}); ok {
			if err != nil && err != io.EOF {
				return n, fmt.Errorf("read share %s at %d: %w", ref, off, err)
			}
			return n, err
		}
	}
	f, err := os.Open(d.sharePath(ref))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("read share %s: %w", ref, storage.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read share %s: %w", ref, err)
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("read share %s at %d: %w", ref, off, err)
	}
	return n, err
}

// parseNum accepts only the canonical decimal form of a uint32, so that
// stray files ("01", "x", "7.tmp") are never taken for shares.
func parseNum(name string) (uint32, bool) {
	n, err := strconv.ParseUint(name, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != name {
		return 0, false
	}
	return uint32(n), true
}

// parseIndex accepts only 32 lower-case hex digits.
func parseIndex(name string) ([storage.StorageIndexSize]byte, bool) {
	var idx [storage.StorageIndexSize]byte
	if len(name) != 2*storage.StorageIndexSize {
		return idx, false
	}
	if _, err := hex.Decode(idx[:], []byte(name)); err != nil || hex.EncodeToString(idx[:]) != name {
		return idx, false
	}
	return idx, true
}

func (d *Disk) List(_ context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	nums, err := listNums(indexDir(filepath.Join(d.dir, "shares"), index), "shares", index)
	if err != nil || d.pack == nil {
		return nums, err
	}
	if pn := d.pack.nums(index); len(pn) > 0 {
		nums = append(nums, pn...)
		slices.Sort(nums)
		nums = slices.Compact(nums)
	}
	return nums, nil
}

// ListSlots lists the slot files of an index (values are written to tmp/
// and renamed in, so every file there is a whole slot).
func (d *Disk) ListSlots(_ context.Context, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	return listNums(indexDir(filepath.Join(d.dir, "slots"), index), "slots", index)
}

// listNums returns the numbers named by the regular files in dir, sorted.
func listNums(dir, what string, index [storage.StorageIndexSize]byte) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []uint32{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s of %x: %w", what, index, err)
	}
	nums := []uint32{}
	for _, e := range ents {
		if n, ok := parseNum(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

func (d *Disk) Delete(_ context.Context, ref storage.Ref) error {
	if d.pack != nil {
		if pack, packed, err := d.deletePacked(ref); packed {
			if err == nil {
				d.maybeCompact(pack)
			}
			return err
		}
	}
	mu := d.stripe(ref.Index)
	mu.Lock()
	defer mu.Unlock()
	p := d.sharePath(ref)
	if err := os.Remove(p); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete share %s: %w", ref, storage.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete share %s: %w", ref, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("delete share %s: %w", ref, err)
	}
	// The index folder goes with its last share (it fails harmlessly when
	// others remain); the stripe lock keeps a concurrent Seal out.
	if os.Remove(dir) == nil {
		syncDir(filepath.Dir(dir))
	}
	return nil
}

// Slot files: magic, generation (big endian), value. The generation is
// the token: it is kept in the file, so it survives restarts, and it moves
// on with every write, even of an equal value.
const (
	slotMagic     = "TARNSLT1"
	slotHeaderLen = len(slotMagic) + 8
)

// parseSlot splits a slot file into its generation and value.
func parseSlot(b []byte) (uint64, []byte, error) {
	if len(b) < slotHeaderLen || string(b[:len(slotMagic)]) != slotMagic {
		return 0, nil, errors.New("slot file has no valid header")
	}
	gen := binary.BigEndian.Uint64(b[len(slotMagic):slotHeaderLen])
	if gen == 0 {
		return 0, nil, errors.New("slot file has generation 0")
	}
	return gen, b[slotHeaderLen:], nil
}

func (d *Disk) readSlot(ref storage.Ref) (uint64, []byte, error) {
	b, err := os.ReadFile(d.slotPath(ref))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, fmt.Errorf("read slot %s: %w", ref, storage.ErrNotFound)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read slot %s: %w", ref, err)
	}
	gen, v, err := parseSlot(b)
	if err != nil {
		return 0, nil, fmt.Errorf("read slot %s: %w", ref, err)
	}
	return gen, v, nil
}

func (d *Disk) ReadSlot(_ context.Context, ref storage.Ref) ([]byte, string, error) {
	gen, v, err := d.readSlot(ref)
	if err != nil {
		return nil, "", err
	}
	return v, strconv.FormatUint(gen, 10), nil
}

func (d *Disk) WriteSlot(_ context.Context, ref storage.Ref, expect string, value []byte) (string, error) {
	mu := d.stripe(ref.Index)
	mu.Lock()
	defer mu.Unlock()
	cur := ""
	gen, _, err := d.readSlot(ref)
	switch {
	case err == nil:
		cur = strconv.FormatUint(gen, 10)
	case !errors.Is(err, storage.ErrNotFound):
		return "", fmt.Errorf("write slot %s: %w", ref, err)
	}
	if cur != expect {
		return "", fmt.Errorf("write slot %s: token %q is stale: %w", ref, expect, storage.ErrConflict)
	}
	gen++
	b := make([]byte, slotHeaderLen, slotHeaderLen+len(value))
	copy(b, slotMagic)
	binary.BigEndian.PutUint64(b[len(slotMagic):], gen)
	b = append(b, value...)
	p := d.slotPath(ref)
	if err := mkdirDurable(filepath.Dir(p)); err != nil {
		return "", fmt.Errorf("write slot %s: %w", ref, err)
	}
	f, err := os.CreateTemp(d.tmp(), "slot-*")
	if err != nil {
		return "", fmt.Errorf("write slot %s: %w", ref, err)
	}
	f.Close()
	if err := writeDurable(f.Name(), p, b); err != nil {
		os.Remove(f.Name())
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
		}
		return "", fmt.Errorf("write slot %s: %w", ref, err)
	}
	return strconv.FormatUint(gen, 10), nil
}

// Indexes lists, prefix folder by prefix folder, every storage index with
// a sealed share or a slot.
func (d *Disk) Indexes(ctx context.Context, fn func(index [storage.StorageIndexSize]byte) error) error {
	var packed [][storage.StorageIndexSize]byte
	if d.pack != nil {
		packed = d.pack.indexes() // sorted
	}
	for i := range 256 {
		prefix := fmt.Sprintf("%02x", i)
		var found [][storage.StorageIndexSize]byte
		for len(packed) > 0 && int(packed[0][0]) == i {
			found = append(found, packed[0])
			packed = packed[1:]
		}
		for _, kind := range []string{"shares", "slots"} {
			ents, err := os.ReadDir(filepath.Join(d.dir, kind, prefix))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("list storage indexes: %w", err)
			}
			for _, e := range ents {
				idx, ok := parseIndex(e.Name())
				if !ok || !e.IsDir() || !hasEntries(filepath.Join(d.dir, kind, prefix, e.Name())) {
					continue
				}
				found = append(found, idx)
			}
		}
		slices.SortFunc(found, func(a, b [storage.StorageIndexSize]byte) int { return slices.Compare(a[:], b[:]) })
		for _, idx := range slices.Compact(found) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(idx); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasEntries(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) > 0
}

// writer fills a temp file of the share's final size; Seal makes it the
// share.
type writer struct {
	d    *Disk
	ref  storage.Ref
	size int64

	mu sync.Mutex
	f  *os.File // nil once sealed or aborted
}

func (w *writer) WriteAt(_ context.Context, p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write share %s: %w", w.ref, storage.ErrClosed)
	}
	if off < 0 || off > w.size || int64(len(p)) > w.size-off {
		return fmt.Errorf("write share %s: %d bytes at %d of %d: %w", w.ref, len(p), off, w.size, storage.ErrRange)
	}
	if _, err := w.f.WriteAt(p, off); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
		}
		return fmt.Errorf("write share %s at %d: %w", w.ref, off, err)
	}
	return nil
}

// File is the share's temporary file, sized to the share: a host handed
// it pwrites the bytes itself; Seal's fsync makes them durable with the
// rest, and its rename publishes them.
func (w *writer) File() (*os.File, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil, fmt.Errorf("share %s: %w", w.ref, storage.ErrClosed)
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("share %s: %w", w.ref, err)
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil || err != nil {
		return nil, fmt.Errorf("share %s: duplicate its file: %w", w.ref, errors.Join(cerr, err))
	}
	return os.NewFile(uintptr(fd), w.f.Name()), nil
}

// end takes the writer's file and gives its space reservation back.
func (w *writer) end() *os.File {
	f := w.f
	w.f = nil
	w.d.mu.Lock()
	w.d.reserved -= w.size
	w.d.mu.Unlock()
	return f
}

// Seal: fsync the temp file, rename it into place (refusing to replace a
// share sealed meanwhile), fsync the folder. A crash before the rename
// leaves only a temp file, removed at the next start; after the folder
// fsync the share survives.
func (w *writer) Seal(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("seal share %s: %w", w.ref, storage.ErrClosed)
	}
	f := w.end()
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.d.publish(w.ref, tmp)
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
		}
		return fmt.Errorf("seal share %s: %w", w.ref, err)
	}
	return nil
}

func (d *Disk) publish(ref storage.Ref, tmp string) error {
	mu := d.stripe(ref.Index)
	mu.Lock()
	defer mu.Unlock()
	p := d.sharePath(ref)
	if err := mkdirDurable(filepath.Dir(p)); err != nil {
		return err
	}
	if _, err := os.Lstat(p); err == nil || d.packed(ref) {
		return storage.ErrExists
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func (w *writer) Abort(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("abort share %s: %w", w.ref, storage.ErrClosed)
	}
	f := w.end()
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("abort share %s: %w", w.ref, err)
	}
	return nil
}

// writeDurable writes b to tmp, fsyncs it, renames it to dst and fsyncs
// dst's folder.
func writeDurable(tmp, dst string, b []byte) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// mkdirDurable makes dir and any missing parents, fsyncing the parent of
// each folder it creates so the new entry survives a crash.
func mkdirDurable(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a folder", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync folder %s: %w", dir, err)
	}
	return nil
}

func strconvU(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func indexName(idx [storage.StorageIndexSize]byte) string { return hex.EncodeToString(idx[:]) }

var (
	_ storage.Putter     = (*Disk)(nil)
	_ storage.FileWriter = (*writer)(nil)
	_ storage.Opener     = (*Disk)(nil)
)

// Put stores a whole share in one call (storage.Putter), crash-safe like
// Seal: the bytes go to an unnamed file (O_TMPFILE) in the share's own
// folder, which is fsynced, linked to the share's name (refusing to
// replace a share sealed meanwhile) and made durable with a folder fsync.
// A crash before the link leaves no file at all. The file is made in the
// share's folder rather than tmp/ so that the file system allocates its
// inode near that (fresh) folder: on ext4 creating many files in one busy
// folder spends most of its time searching for a free inode. Where
// O_TMPFILE or /proc is missing, Put writes a temp file in tmp/ and
// renames it, as Seal does.
func (d *Disk) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	p := d.sharePath(ref)
	if _, err := os.Lstat(p); err == nil || d.packed(ref) {
		return fmt.Errorf("put share %s: %w", ref, storage.ErrExists)
	}
	sp, err := d.Space(ctx)
	if err != nil {
		return fmt.Errorf("put share %s: %w", ref, err)
	}
	if int64(len(data)) > sp.Free {
		return fmt.Errorf("put share %s of %d bytes with %d free: %w", ref, len(data), sp.Free, storage.ErrNoSpace)
	}
	if !d.opts.NoPack && d.pack != nil && len(data) <= d.packMax {
		if int64(len(data))+packDeleteRoom > sp.Free {
			return fmt.Errorf("put share %s of %d bytes with %d free, %d kept for deletes: %w", ref, len(data), sp.Free, packDeleteRoom, storage.ErrNoSpace)
		}
		return d.putPacked(ref, p, data)
	}
	err = errNoTmpfile
	if useTmpfile {
		err = d.putUnnamed(ref, p, data)
	}
	if errors.Is(err, errNoTmpfile) {
		err = d.putByRename(ref, data)
	}
	if err != nil {
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
		}
		return fmt.Errorf("put share %s: %w", ref, err)
	}
	return nil
}

// useTmpfile is cleared by tests of the rename path.
var useTmpfile = true

// errNoTmpfile: this system cannot make or link an unnamed file.
var errNoTmpfile = errors.New("no O_TMPFILE")

// putByRename is Put through a named temp file in tmp/.
func (d *Disk) putByRename(ref storage.Ref, data []byte) error {
	f, err := os.CreateTemp(d.tmp(), "share-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.publish(ref, tmp)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
