//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
)

func packRef(i int) storage.Ref {
	var r storage.Ref
	r.Index[0] = byte(i * 37)
	r.Index[1] = byte(i >> 8)
	r.Index[2] = byte(i)
	r.Num = uint32(i % 7)
	return r
}

func packData(i, n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), uint64(n)))
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return b
}

// packCodec reads the codec of the pack file at path.
func packCodec(t *testing.T, path string) *recCodec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := parsePackHeader(b, true)
	if err != nil {
		t.Fatalf("pack %s: %v", path, err)
	}
	return c
}

// packFiles lists the pack files of a backend folder.
func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// shareFiles counts the files under shares/.
func shareFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(dir, "shares"), func(_ string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// mustRead reads a whole share through ReadAt, Stat and Open, and fails
// unless all three agree with want.
func mustRead(t *testing.T, d *Disk, ref storage.Ref, want []byte) {
	t.Helper()
	ctx := context.Background()
	size, err := d.Stat(ctx, ref)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("stat %s: %d, %v; want %d", ref, size, err, len(want))
	}
	got := make([]byte, len(want)+10)
	n, err := d.ReadAt(ctx, ref, got, 0)
	if n != len(want) || err != io.EOF || !bytes.Equal(got[:n], want) {
		t.Fatalf("read %s: %d bytes, %v, equal %v; want %d and EOF", ref, n, err, bytes.Equal(got[:n], want), len(want))
	}
	if len(want) > 3 {
		n, err = d.ReadAt(ctx, ref, got[:2], int64(len(want)-3))
		if n != 2 || err != nil || !bytes.Equal(got[:2], want[len(want)-3:len(want)-1]) {
			t.Fatalf("read 2 bytes of %s at %d: %d, %v", ref, len(want)-3, n, err)
		}
	}
	if n, err = d.ReadAt(ctx, ref, got[:1], int64(len(want))); n != 0 || err != io.EOF {
		t.Fatalf("read %s at its end: %d, %v; want 0, EOF", ref, n, err)
	}
	f, fsize, err := d.Open(ctx, ref)
	if err != nil || fsize != int64(len(want)) {
		t.Fatalf("open %s: size %d, %v", ref, fsize, err)
	}
	defer f.Close()
	all, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(all, want) {
		t.Fatalf("open %s: read %d bytes, %v; equal %v", ref, len(all), err, bytes.Equal(all, want))
	}
	if _, err := f.WriteAt([]byte{1}, 0); err == nil {
		t.Fatalf("open %s: the handed file takes writes", ref)
	}
}

// TestPackedShares: small Puts go to a pack, not to files; every
// operation sees them; they survive a reopen; a delete survives a reopen
// too; a share over the threshold still gets a file.
func TestPackedShares(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	sizes := []int{0, 1, 4 << 10, 1500, maxPackShare}
	for i, n := range sizes {
		if err := d.Put(ctx, packRef(i), packData(i, n)); err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
	}
	big := packRef(100)
	if err := d.Put(ctx, big, packData(100, maxPackShare+1)); err != nil {
		t.Fatal(err)
	}
	if n := shareFiles(t, dir); n != 1 {
		t.Fatalf("%d share files, want 1 (the share over %d bytes)", n, maxPackShare)
	}
	if p := packFiles(t, dir); len(p) != 1 {
		t.Fatalf("pack files %v, want one", p)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "FORMAT")); string(b) != formatPacked {
		t.Fatalf("FORMAT %q, want %q", b, formatPacked)
	}
	check := func(d *Disk, deleted map[int]bool) {
		t.Helper()
		var idx [][16]byte
		if err := d.Indexes(ctx, func(i [16]byte) error { idx = append(idx, i); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(idx, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) }) {
			t.Errorf("indexes not sorted: %x", idx)
		}
		for i, n := range sizes {
			ref := packRef(i)
			nums, err := d.List(ctx, ref.Index)
			if err != nil {
				t.Fatal(err)
			}
			if deleted[i] {
				if len(nums) != 0 || slices.Contains(idx, ref.Index) {
					t.Errorf("deleted share %s: list %v, in indexes %v", ref, nums, slices.Contains(idx, ref.Index))
				}
				if _, err := d.Stat(ctx, ref); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("stat of deleted %s: %v", ref, err)
				}
				continue
			}
			if !slices.Equal(nums, []uint32{ref.Num}) || !slices.Contains(idx, ref.Index) {
				t.Errorf("share %s: list %v, in indexes %v", ref, nums, slices.Contains(idx, ref.Index))
			}
			mustRead(t, d, ref, packData(i, n))
		}
		mustRead(t, d, big, packData(100, maxPackShare+1))
	}
	check(d, nil)

	t.Run("existing", func(t *testing.T) {
		if err := d.Put(ctx, packRef(2), []byte("x")); !errors.Is(err, storage.ErrExists) {
			t.Errorf("put over a packed share: %v, want ErrExists", err)
		}
		if _, err := d.Create(ctx, packRef(2), 1); !errors.Is(err, storage.ErrExists) {
			t.Errorf("create over a packed share: %v, want ErrExists", err)
		}
		if err := d.Put(ctx, big, []byte("x")); !errors.Is(err, storage.ErrExists) {
			t.Errorf("small put over a share file: %v, want ErrExists", err)
		}
	})

	if err := d.Delete(ctx, packRef(1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, packRef(1)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	deleted := map[int]bool{1: true}
	check(d, deleted)

	t.Run("PackedShares", func(t *testing.T) {
		ps, err := PackedShares(dir) // beside the open backend
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != len(sizes)-1 {
			t.Fatalf("%d packed shares listed, want %d: %+v", len(ps), len(sizes)-1, ps)
		}
		for _, p := range ps {
			i := -1
			for j := range sizes {
				if packRef(j) == p.Ref {
					i = j
				}
			}
			if i < 0 || deleted[i] {
				t.Fatalf("listed %s, not a live packed share", p.Ref)
			}
			b, _ := os.ReadFile(p.Pack)
			if p.Offset+p.Length > int64(len(b)) || !bytes.Equal(b[p.Offset:p.Offset+p.Length], packData(i, sizes[i])) {
				t.Errorf("share %s at %d+%d of %s: bytes differ", p.Ref, p.Offset, p.Length, p.Pack)
			}
		}
	})
	d.Close()

	d2 := newDisk(t, dir)
	check(d2, deleted)
	// A share deleted and put again is the new one, also after a reopen.
	if err := d2.Put(ctx, packRef(1), []byte("again")); err != nil {
		t.Fatal(err)
	}
	d2.Close()
	d3 := newDisk(t, dir)
	mustRead(t, d3, packRef(1), []byte("again"))
}

// TestPackTornTail: a record cut short by a crash (written here by hand)
// is dropped and cut off at the next open; shares before it are intact,
// and later puts append after them and survive another reopen.
func TestPackTornTail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		tail func(rec []byte) []byte // what of a whole record reached the disk
	}{
		{"half a header", func(rec []byte) []byte { return rec[:recHeaderLen/2] }},
		{"header only", func(rec []byte) []byte { return rec[:recHeaderLen] }},
		{"half the data", func(rec []byte) []byte { return rec[:recHeaderLen+(len(rec)-recHeaderLen)/2] }},
		{"whole but data zeroed", func(rec []byte) []byte {
			b := slices.Clone(rec)
			clear(b[recHeaderLen+10:])
			return b
		}},
		{"zeros", func(rec []byte) []byte { return make([]byte, 4096) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, dir)
			for i := range 5 {
				if err := d.Put(ctx, packRef(i), packData(i, 3000)); err != nil {
					t.Fatal(err)
				}
			}
			d.Close()
			pack := packFiles(t, dir)[0]
			st, _ := os.Stat(pack)
			sound := st.Size()
			data := packData(99, 3000)
			rec := make([]byte, recHeaderLen, recHeaderLen+len(data))
			packCodec(t, pack).encodeHeader(rec, recKindShare, packRef(99), data)
			rec = append(rec, data...)
			f, err := os.OpenFile(pack, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.tail(rec))
			f.Close()

			var logged []string
			packLogf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
			t.Cleanup(func() { packLogf = defaultPackLogf })
			d2 := newDisk(t, dir)
			if st, _ := os.Stat(pack); st.Size() != sound {
				t.Fatalf("pack is %d bytes after reopen, want the sound %d", st.Size(), sound)
			}
			if len(logged) != 1 || !strings.Contains(logged[0], "torn tail") {
				t.Errorf("logged %q, want one torn tail line", logged)
			}
			if _, err := d2.Stat(ctx, packRef(99)); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("torn share: %v, want ErrNotFound", err)
			}
			if err := d2.Put(ctx, packRef(99), data); err != nil {
				t.Fatal(err)
			}
			d2.Close()
			d3 := newDisk(t, dir)
			for i := range 5 {
				mustRead(t, d3, packRef(i), packData(i, 3000))
			}
			mustRead(t, d3, packRef(99), data)
		})
	}
}

var defaultPackLogf = packLogf

// TestPackDamage: a flipped byte inside a packed share is served as it is
// while the index holds it (the reader's hashes judge shares, as with a
// damaged share file); the scan at the next open detects it by the
// record's checksum, drops that share alone and logs it. A damaged header
// in the middle costs only its record: the scan finds the next one.
func TestPackDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		at   int // offset in record 2
	}{
		{"data byte", recHeaderLen + 100},
		{"length field", 30},
		{"magic", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, dir)
			for i := range 5 {
				if err := d.Put(ctx, packRef(i), packData(i, 1000)); err != nil {
					t.Fatal(err)
				}
			}
			pack := packFiles(t, dir)[0]
			f, err := os.OpenFile(pack, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			off := int64(packV3Start + 2*(recHeaderLen+1000) + tc.at)
			b := []byte{0}
			f.ReadAt(b, off)
			b[0] ^= 0x40
			f.WriteAt(b, off)
			f.Close()
			if tc.at >= recHeaderLen {
				want := packData(2, 1000)
				want[tc.at-recHeaderLen] ^= 0x40
				mustRead(t, d, packRef(2), want)
			}
			d.Close()

			var logged []string
			packLogf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
			t.Cleanup(func() { packLogf = defaultPackLogf })
			d2 := newDisk(t, dir)
			if len(logged) != 1 || !strings.Contains(logged[0], "damaged") {
				t.Errorf("logged %q, want one line of damage", logged)
			}
			if nums, _ := d2.List(ctx, packRef(2).Index); len(nums) != 0 {
				t.Errorf("damaged share still listed: %v", nums)
			}
			for _, i := range []int{0, 1, 3, 4} {
				mustRead(t, d2, packRef(i), packData(i, 1000))
			}
			if err := d2.Put(ctx, packRef(2), packData(2, 1000)); err != nil {
				t.Fatalf("put the damaged share again: %v", err)
			}
			mustRead(t, d2, packRef(2), packData(2, 1000))
		})
	}
}

// TestPackConcurrentPuts: many Puts at once (group commit) are each
// readable, also after a reopen, and fewer syncs than puts ran.
func TestPackConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				k := g*each + i
				if err := d.Put(ctx, packRef(k), packData(k, 500+k)); err != nil {
					errs[g] = err
					return
				}
				if k%5 == 0 {
					if _, err := d.List(ctx, packRef(k).Index); err != nil {
						errs[g] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	syncs := d.pack.syncs.Load()
	t.Logf("%d puts, %d group syncs", writers*each, syncs)
	if syncs == 0 || syncs > writers*each {
		t.Errorf("%d syncs for %d puts", syncs, writers*each)
	}
	d.Close()
	d2 := newDisk(t, dir)
	for k := range writers * each {
		mustRead(t, d2, packRef(k), packData(k, 500+k))
	}
}

// TestPackRollAndReclaim: packs roll at their size; an emptied pack goes
// (the oldest at once, a later one by compaction, which copies nothing);
// the deletions (tombstones in later packs) hold across a reopen.
func TestPackRollAndReclaim(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	d.pack.rollAt = 3 * (recHeaderLen + 1000) // three shares a pack
	for i := range 9 {
		if err := d.Put(ctx, packRef(i), packData(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if p := packFiles(t, dir); len(p) != 3 {
		t.Fatalf("%d packs, want 3: %v", len(p), p)
	}
	names := func() (out []string) {
		for _, p := range packFiles(t, dir) {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	// Empty the second pack: compacted away (the first is live).
	for i := 3; i < 6; i++ {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := names(), []string{packName(1), packName(3), packName(4)}; !slices.Equal(got, want) {
		t.Fatalf("packs after emptying the second: %v, want %v", got, want)
	}
	// Empty the first: it goes as the oldest.
	for i := range 3 {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := names(), []string{packName(3), packName(4)}; !slices.Equal(got, want) {
		t.Fatalf("packs after emptying the first: %v, want %v", got, want)
	}
	d.Close()
	d2 := newDisk(t, dir)
	for i := range 9 {
		nums, _ := d2.List(ctx, packRef(i).Index)
		if live := i >= 6; live != (len(nums) == 1) {
			t.Errorf("share %d after reopen: list %v", i, nums)
		}
	}
}

// TestPackCompaction: a pack whose live shares fill under a quarter of it
// is compacted: its live share moves to the current pack (same bytes, the
// index follows), and a tombstone in it that still keeps a share of an
// older pack deleted is carried along, so that the share stays deleted
// after a reopen although its record is still in the older pack.
func TestPackCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	d.pack.rollAt = 2500
	put := func(i, n int) {
		t.Helper()
		if err := d.Put(ctx, packRef(i), packData(i, n)); err != nil {
			t.Fatal(err)
		}
	}
	del := func(i int) {
		t.Helper()
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 1000) // pack 1
	put(1, 1000) // pack 1
	put(2, 1000) // pack 2
	del(0)       // tombstone in pack 2; share 0's record stays in pack 1 (1 is live)
	put(5, 10)   // pack 2
	put(4, 1000) // pack 2
	put(6, 1000) // pack 3
	del(2)
	if len(packFiles(t, dir)) != 3 {
		t.Fatalf("packs before compaction: %v", packFiles(t, dir))
	}
	del(4) // pack 2: 50 live bytes of 2170: compacted
	ps := packFiles(t, dir)
	if len(ps) != 2 || filepath.Base(ps[0]) != packName(1) || filepath.Base(ps[1]) != packName(3) {
		t.Fatalf("packs after compaction: %v, want packs 1 and 3", ps)
	}
	mustRead(t, d, packRef(5), packData(5, 10))
	if loc, _, _ := d.pack.find(packRef(5)); loc.pack != 3 {
		t.Fatalf("moved share is in pack %d, want 3", loc.pack)
	}
	live := map[int]bool{1: true, 5: true, 6: true}
	check := func(d *Disk) {
		t.Helper()
		for _, i := range []int{0, 1, 2, 4, 5, 6} {
			nums, _ := d.List(ctx, packRef(i).Index)
			if live[i] != (len(nums) == 1) {
				t.Errorf("share %d: list %v, want live %v", i, nums, live[i])
			}
		}
	}
	check(d)
	d.Close()
	d2 := newDisk(t, dir)
	check(d2)
	mustRead(t, d2, packRef(5), packData(5, 10))
	mustRead(t, d2, packRef(1), packData(1, 1000))
}

// TestOldLayoutStillServed: a folder written with packing off (one file
// per share, FORMAT 1) opens with packing on: old shares read, list,
// index and delete as before, and sit beside new packed ones; with
// packing off again the packed shares still read.
func TestOldLayoutStillServed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDiskOpts(t, dir, Options{NoPack: true})
	old := storage.Ref{Index: [16]byte{0xaa}, Num: 1}
	if err := d.Put(ctx, old, []byte("old share")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "FORMAT")); string(b) != formatLine {
		t.Fatalf("FORMAT %q with packing off, want %q", b, formatLine)
	}
	if _, err := os.Stat(filepath.Join(dir, "packs")); err == nil {
		t.Fatal("packs/ made with packing off")
	}
	d.Close()

	d2 := newDisk(t, dir)
	mustRead(t, d2, old, []byte("old share"))
	newer := storage.Ref{Index: old.Index, Num: 4}
	if err := d2.Put(ctx, newer, []byte("new share")); err != nil {
		t.Fatal(err)
	}
	if err := d2.Put(ctx, old, []byte("x")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("put over an old share file: %v", err)
	}
	if nums, err := d2.List(ctx, old.Index); err != nil || !slices.Equal(nums, []uint32{1, 4}) {
		t.Fatalf("list: %v, %v; want [1 4]", nums, err)
	}
	n := 0
	d2.Indexes(ctx, func([16]byte) error { n++; return nil })
	if n != 1 {
		t.Fatalf("indexes: %d, want 1", n)
	}
	if shareFiles(t, dir) != 1 {
		t.Fatal("the new small share got a file")
	}
	d2.Close()

	d3 := newDiskOpts(t, dir, Options{NoPack: true})
	mustRead(t, d3, old, []byte("old share"))
	mustRead(t, d3, newer, []byte("new share"))
	if err := d3.Delete(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if err := d3.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	if nums, _ := d3.List(ctx, old.Index); len(nums) != 0 {
		t.Fatalf("list after deletes: %v", nums)
	}
}

// TestFormatRefused: a FORMAT this tarn does not know is refused.
func TestFormatRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "FORMAT"), []byte("tarn-storage-disk 5\n"), 0o600)
	if _, err := New(dir); err == nil || !strings.Contains(err.Error(), "FORMAT says") {
		t.Fatalf("open of a FORMAT 5 folder: %v", err)
	}
}

// TestPackConcurrentDeletes: Puts, reads and Deletes at once over small
// packs (so packs roll, empty out and are compacted meanwhile): every
// share ends as it should, also after a reopen.
func TestPackConcurrentDeletes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	d.pack.rollAt = 8 << 10
	const writers, each = 4, 60
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				k := g*each + i
				if err := d.Put(ctx, packRef(k), packData(k, 300+k)); err != nil {
					errs[g] = err
					return
				}
				if i > 0 && (i-1)%3 != 0 { // keep every third
					if err := d.Delete(ctx, packRef(k-1)); err != nil {
						errs[g] = fmt.Errorf("delete %d: %w", k-1, err)
						return
					}
				}
				buf := make([]byte, 300+k)
				if _, err := d.ReadAt(ctx, packRef(k), buf, 0); err != nil && err != io.EOF {
					errs[g] = fmt.Errorf("read %d: %w", k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	want := func(k int) bool { i := k % each; return i == each-1 || i%3 == 0 }
	check := func(d *Disk) {
		t.Helper()
		for k := range writers * each {
			if want(k) {
				mustRead(t, d, packRef(k), packData(k, 300+k))
			} else if _, err := d.Stat(ctx, packRef(k)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("deleted share %d: %v", k, err)
			}
		}
	}
	check(d)
	t.Logf("%d packs left", len(packFiles(t, dir)))
	d.Close()
	check(newDisk(t, dir))
}

// TestPackSyncFails: when a group sync fails, every Put it was to cover
// fails and none of them becomes visible; the next Puts go to a new pack
// and succeed, and after a reopen every acknowledged share is there (a
// failed one may be there too: its record may have reached the disk).
func TestPackSyncFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	if err := d.Put(ctx, packRef(0), packData(0, 100)); err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	fail.Store(true)
	real := packSync
	packSync = func(f *os.File) error {
		if fail.Load() {
			return syscall.EIO
		}
		return real(f)
	}
	t.Cleanup(func() { packSync = real })
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = d.Put(ctx, packRef(1+i), packData(1+i, 100)) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("put %d during a failing sync: %v, want EIO", 1+i, err)
		}
		if _, err := d.Stat(ctx, packRef(1+i)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("share %d of a failed put is visible: %v", 1+i, err)
		}
	}
	fail.Store(false)
	if err := d.Put(ctx, packRef(9), packData(9, 100)); err != nil {
		t.Fatalf("put after the failure: %v", err)
	}
	if loc, _, _ := d.pack.find(packRef(9)); loc.pack < 2 {
		t.Errorf("put after a failed sync went to pack %d, want a new pack", loc.pack)
	}
	if err := d.Put(ctx, packRef(1), packData(1, 100)); err != nil {
		t.Fatalf("put again of a share whose put failed: %v", err)
	}
	d.Close()
	d2 := newDisk(t, dir)
	for _, i := range []int{0, 1, 9} {
		mustRead(t, d2, packRef(i), packData(i, 100))
	}
}
