//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// zeroAt overwrites n bytes of the file at path from off with zeros (a
// sector the disk returns zeroed, or a write torn to zeros).
func zeroAt(t *testing.T, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
}

// TestReview5HeaderSectorZeroed: both copies of a version 2 pack's
// header lie in its first 64 bytes, so one damaged sector takes both.
// The pack's records must then be kept on disk (as with any damaged
// header, docs/formats.md: "kept on disk, not read, never removed"), not
// read by version 1 rules: those find no TPK1 record, call the whole pack
// a torn tail and cut it to nothing; and a version 1 record forged in a
// client's share bytes is taken.
func TestReview5HeaderSectorZeroed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		zero   int64 // bytes zeroed from 0
		forged bool  // a client's share holds a forged version 1 tombstone of the victim
	}{
		{"header zeroed", packHdrLen, false},
		{"first 512 bytes zeroed", 512, false},
		{"header zeroed, forged v1 tombstone in a share", packHdrLen, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			catchPackLogs(t)
			d := newDisk(t, dir)
			victim := packRef(1)
			if err := d.Put(ctx, victim, packData(1, 3000)); err != nil {
				t.Fatal(err)
			}
			// The victim alone in pack 1; the others in pack 2.
			d.pack.amu.Lock()
			d.pack.rollAt = 1
			d.pack.amu.Unlock()
			if err := d.Put(ctx, packRef(30), packData(30, 10)); err != nil {
				t.Fatal(err)
			}
			d.pack.amu.Lock()
			d.pack.rollAt = packRollSize
			d.pack.amu.Unlock()
			for i := 2; i < 10; i++ {
				data := packData(i, 3000)
				if tc.forged && i == 5 {
					data = append(forgeV1(recKindDelete, victim, nil), data...)
				}
				if err := d.Put(ctx, packRef(i), data); err != nil {
					t.Fatal(err)
				}
			}
			d.Close()
			packs := packFiles(t, dir)
			if len(packs) != 2 {
				t.Fatalf("packs %v, want 2", packs)
			}
			pack := packs[1]
			st0, err := os.Stat(pack)
			if err != nil {
				t.Fatal(err)
			}
			zeroAt(t, pack, 0, tc.zero)
			d2 := newDisk(t, dir)
			st, err := os.Stat(pack)
			if err != nil || st.Size() != st0.Size() {
				size := int64(-1)
				if st != nil {
					size = st.Size()
				}
				t.Errorf("pack after the open: %d bytes (%v), want it kept whole (%d): its acknowledged records are gone", size, err, st0.Size())
			}
			// Whatever the open does with the damaged pack, it must not
			// take a record a client wrote: the victim, in pack 1, keeps
			// its bytes.
			mustRead(t, d2, victim, packData(1, 3000))
			for i := 2; i < 10; i++ {
				if _, err := d2.Stat(ctx, packRef(i)); err != nil && !errors.Is(err, storage.ErrNotFound) {
					t.Fatal(err)
				}
			}
			if err := d2.Put(ctx, packRef(20), packData(20, 100)); err != nil {
				t.Fatal(err)
			}
			d2.Close()
			if _, err := os.Stat(pack); err != nil {
				t.Errorf("pack removed after the open and a put: %v", err)
			}
		})
	}
}

// TestReview5BatchClaimVsCompaction: PutBatch claims its packed shares
// one by one, each under its stripe lock, and holds the first claims
// while it waits for the next stripe. A Delete that compacts takes every
// stripe and then waits until no claim is pending: each waits for the
// other for ever.
func TestReview5BatchClaimVsCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	threeOfEightLive(t, ctx, d)
	puts := []storage.PutItem{
		{Ref: packRef(40), Data: packData(40, 100)},
		{Ref: packRef(41), Data: packData(41, 100)},
	}
	compacting := make(chan error, 1)
	var once sync.Once
	packClaimed = func(ref storage.Ref) {
		if ref != puts[0].Ref {
			return
		}
		once.Do(func() {
			// Under a quarter live after this Delete: it compacts, and
			// takes every stripe while the first share is claimed.
			go func() { compacting <- d.Delete(ctx, packRef(5)) }()
			time.Sleep(300 * time.Millisecond)
		})
	}
	t.Cleanup(func() { packClaimed = func(storage.Ref) {} })
	done := make(chan []error, 1)
	go func() {
		errs, err := d.PutBatch(ctx, puts)
		if err != nil {
			errs = []error{err}
		}
		done <- errs
	}()
	select {
	case errs := <-done:
		for k, err := range errs {
			if err != nil {
				t.Errorf("share %d of the batch: %v", k, err)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PutBatch and a compacting Delete deadlocked (the batch holds a claim and waits for a stripe; the compaction holds every stripe and waits for the claim)")
	}
	if err := <-compacting; err != nil {
		t.Fatal(err)
	}
	for _, p := range puts {
		mustRead(t, d, p.Ref, p.Data)
	}
}

// TestReview5WantsCompactionClosedPack: wantsCompaction takes a pack's
// file from the set and then stats it; a reclaim in another Delete may
// remove and close that pack in between (it is the oldest and empty).
// Stat then fails with a nil FileInfo: the answer must be "no", not a
// panic of the plugin.
func TestReview5WantsCompactionClosedPack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	if err := d.Put(ctx, packRef(1), packData(1, 100)); err != nil {
		t.Fatal(err)
	}
	d.pack.mu.Lock()
	f := d.pack.files[1]
	d.pack.mu.Unlock()
	f.Close() // as removePack does, right after wantsCompaction's look-up
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("wantsCompaction of a pack closed meanwhile panics: %v", r)
		}
	}()
	if d.pack.wantsCompaction(1) {
		t.Error("wantsCompaction of a closed pack says yes")
	}
}

// TestReview5ConcurrentBatchDeletes: PutBatch, Put, Delete (which
// compacts and reclaims: small packs, compactCurrentMin 1) and reads at
// once: no deadlock, every acknowledged share that was not deleted reads
// back its bytes, every deleted one is gone, also after a reopen.
func TestReview5ConcurrentBatchDeletes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldMin := compactCurrentMin
	compactCurrentMin = 1
	t.Cleanup(func() { compactCurrentMin = oldMin })
	d := newDisk(t, dir)
	d.pack.rollAt = 8 << 10
	const writers, each = 4, 40
	size := func(k int) int { return 200 + k%500 }
	var wg sync.WaitGroup
	errs := make([]error, writers+1) // the last is the reader's
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for k := 0; ; k = (k + 1) % (writers * each * 2) {
			select {
			case <-stop:
				return
			default:
			}
			buf := make([]byte, size(k))
			n, err := d.ReadAt(ctx, packRef(k), buf, 0)
			if err == nil || errors.Is(err, io.EOF) {
				if n != size(k) || !bytes.Equal(buf, packData(k, size(k))) {
					errs[writers] = fmt.Errorf("share %d read back other bytes", k)
				}
			}
		}
	})
	for g := range writers {
		wg.Go(func() {
			for i := 0; i < each; i += 2 {
				k := 2 * (g*each + i)
				var e []error
				var err error
				if i%4 == 0 {
					e, err = d.PutBatch(ctx, []storage.PutItem{
						{Ref: packRef(k), Data: packData(k, size(k))},
						{Ref: packRef(k + 1), Data: packData(k+1, size(k+1))},
					})
					err = errors.Join(append(e, err)...)
				} else {
					err = errors.Join(d.Put(ctx, packRef(k), packData(k, size(k))), d.Put(ctx, packRef(k+1), packData(k+1, size(k+1))))
				}
				if err != nil {
					errs[g] = err
					return
				}
				if err := d.Delete(ctx, packRef(k)); err != nil { // keep k+1
					errs[g] = fmt.Errorf("delete %d: %w", k, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("puts and deletes did not finish in 60 s")
	}
	close(stop)
	readers.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	check := func(d *Disk) {
		t.Helper()
		for g := range writers {
			for i := 0; i < each; i += 2 {
				k := 2 * (g*each + i)
				mustRead(t, d, packRef(k+1), packData(k+1, size(k+1)))
				if _, err := d.Stat(ctx, packRef(k)); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("deleted share %d: %v", k, err)
				}
			}
		}
	}
	check(d)
	t.Logf("%d packs left", len(packFiles(t, dir)))
	d.Close()
	check(newDisk(t, dir))
}

// TestReview5CrashAfterRoll: a crash right after a roll made pack 2 and
// before any record in it was synced leaves pack 2 in one of these
// states. Each must open: pack 1's shares read back, the next Put
// succeeds and reads back after another reopen, and pack 1 is untouched.
func TestReview5CrashAfterRoll(t *testing.T) {
	ctx := context.Background()
	keyA, keyB := []byte("AAAAAAAAAAAAAAAA"), []byte("BBBBBBBBBBBBBBBB")
	mixed := append(slices.Clone(encodePackHeader(keyA)[:packHdrCopy]), encodePackHeader(keyB)[packHdrCopy:]...)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header cut", encodePackHeader(keyA)[:40]},
		{"size without data", make([]byte, packHdrLen)},
		{"header alone", encodePackHeader(keyA)},
		{"copies with other keys", mixed},
		{"header and a torn record", append(encodePackHeader(keyA), "TPK2\x01\x00\x10"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			catchPackLogs(t)
			d := newDisk(t, dir)
			for i := range 4 {
				if err := d.Put(ctx, packRef(i), packData(i, 900)); err != nil {
					t.Fatal(err)
				}
			}
			d.Close()
			p1 := filepath.Join(dir, "packs", packName(1))
			st1, _ := os.Stat(p1)
			if err := os.WriteFile(filepath.Join(dir, "packs", packName(2)), tc.b, 0o600); err != nil {
				t.Fatal(err)
			}
			d2 := newDisk(t, dir)
			for i := range 4 {
				mustRead(t, d2, packRef(i), packData(i, 900))
			}
			if err := d2.Put(ctx, packRef(9), packData(9, 500)); err != nil {
				t.Fatal(err)
			}
			if err := d2.Delete(ctx, packRef(0)); err != nil {
				t.Fatal(err)
			}
			d2.Close()
			d3 := newDisk(t, dir)
			mustRead(t, d3, packRef(9), packData(9, 500))
			for i := 1; i < 4; i++ {
				mustRead(t, d3, packRef(i), packData(i, 900))
			}
			if _, err := d3.Stat(ctx, packRef(0)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("deleted share: %v", err)
			}
			if st, err := os.Stat(p1); err != nil || st.Size() != st1.Size() {
				t.Errorf("pack 1 changed: %v", err)
			}
		})
	}
}

// TestReview5V1DamagedStartWithV2Magic: a version 1 pack damaged at its
// start whose share bytes happen to hold "TPK2" is still a version 1 pack
// (only a "TPK2" whose length leads to the end or to another "TPK2" marks
// a version 2 pack that lost its header): the records after the damage
// are read.
func TestReview5V1DamagedStartWithV2Magic(t *testing.T) {
	dir := t.TempDir()
	data0 := append([]byte("xxTPK2\x01\x00\x00\x05yy"), packData(0, 500)...)
	var v1 []byte
	v1 = append(v1, forgeV1(recKindShare, packRef(0), data0)...)
	v1 = append(v1, forgeV1(recKindShare, packRef(1), packData(1, 700))...)
	v1 = append(v1, forgeV1(recKindShare, packRef(2), packData(2, 800))...)
	v1[0] ^= 0x10 // the first record's magic
	writeV1Pack(t, dir, v1)
	catchPackLogs(t)
	d := newDisk(t, dir)
	mustRead(t, d, packRef(1), packData(1, 700))
	mustRead(t, d, packRef(2), packData(2, 800))
}

// TestReview5HoldsV2Records: the chain test of a header-less file.
func TestReview5HoldsV2Records(t *testing.T) {
	c := keyCodec([]byte("0123456789abcdef"), packHdrLen)
	rec := func(i, n int) []byte {
		b := make([]byte, recHeaderLen)
		c.encodeHeader(b, recKindShare, packRef(i), packData(i, n))
		return append(b, packData(i, n)...)
	}
	two := append(rec(1, 100), rec(2, 50)...)
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"none", packData(1, 1000), false},
		{"lone magic", append(packData(1, 100), "TPK2\x01\x00\x00\x09"...), false},
		{"one record to the end", rec(1, 100), true},
		{"two records", two, true},
		{"two records, the last torn", two[:len(two)-5], true},
		{"one torn record", rec(1, 100)[:90], false},
		{"magic at the last bytes", append(packData(1, 100), "TPK2"...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holdsV2Records(tc.b); got != tc.want {
				t.Errorf("holdsV2Records: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReview5ModelWithFailedRemovals: Puts, Deletes, Puts again of
// deleted shares, and reopens, over small packs that roll, compact and
// reclaim all the time, while pack removals fail at random (zombies, and
// superseded packs read again after a reopen): after every step the
// folder holds exactly the shares a plain map says, with their bytes;
// nothing deleted comes back, nothing acknowledged goes.
func TestReview5ModelWithFailedRemovals(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			dir := t.TempDir()
			logged := catchPackLogs(t)
			oldMin := compactCurrentMin
			compactCurrentMin = 1
			t.Cleanup(func() { compactCurrentMin = oldMin })
			rng := rand.New(rand.NewPCG(seed, 99))
			real := packRemove
			packRemove = func(name string) error {
				if rng.IntN(3) == 0 {
					return &os.PathError{Op: "remove", Path: name, Err: syscall.EIO}
				}
				return real(name)
			}
			t.Cleanup(func() { packRemove = real })
			open := func() *Disk {
				d, err := NewOptions(dir, Options{})
				if err != nil {
					t.Fatal(err)
				}
				d.pack.rollAt = 6 << 10
				return d
			}
			d := open()
			t.Cleanup(func() { d.Close() })
			model := map[int]int{} // share -> generation of its bytes
			gen := 0
			data := func(k, g int) []byte { return packData(k*1000+g, 300+(k*7+g)%900) }
			check := func(when string) {
				t.Helper()
				for k := range 24 {
					g, live := model[k]
					if live {
						want := data(k, g)
						got := make([]byte, len(want))
						n, err := d.ReadAt(ctx, packRef(k), got, 0)
						if n != len(want) || (err != nil && err != io.EOF) || !bytes.Equal(got, want) {
							t.Fatalf("%s: share %d (gen %d): read %d bytes, %v, equal %v", when, k, g, n, err, bytes.Equal(got, want))
						}
					} else if _, err := d.Stat(ctx, packRef(k)); !errors.Is(err, storage.ErrNotFound) {
						t.Fatalf("%s: deleted share %d: %v", when, k, err)
					}
				}
			}
			for step := range 400 {
				k := rng.IntN(24)
				switch r := rng.IntN(20); {
				case r == 0:
					d.Close()
					d = open()
					check(fmt.Sprint("after the reopen at step ", step))
				case model[k] != 0:
					if err := d.Delete(ctx, packRef(k)); err != nil {
						t.Fatalf("step %d: delete %d: %v", step, k, err)
					}
					delete(model, k)
				default:
					gen++
					if err := d.Put(ctx, packRef(k), data(k, gen)); err != nil {
						t.Fatalf("step %d: put %d: %v", step, k, err)
					}
					model[k] = gen
				}
				check(fmt.Sprint("step ", step))
			}
			d.Close()
			d = open()
			check("at the end")
			failed := 0
			for _, l := range logged() {
				if strings.Contains(l, "input/output error") {
					failed++
				}
			}
			t.Logf("%d packs left, %d failed removals, last pack %d", len(packFiles(t, dir)), failed, d.pack.curNum)
			if failed == 0 {
				t.Error("no removal failed: the test did not test zombies")
			}
		})
	}
}

// TestReview5LengthLimits: a version 2 header claiming up to 1 MiB is
// sound (tag permitting); past it, or a tombstone with data, is not,
// even under a valid tag; a record that straddles the end is cut short.
func TestReview5LengthLimits(t *testing.T) {
	c := keyCodec([]byte("0123456789abcdef"), packHdrLen)
	hdr := func(kind byte, n int) []byte {
		h := make([]byte, recHeaderLen)
		copy(h, packMagicV2)
		h[4], h[5], h[6], h[7] = kind, byte(n>>16), byte(n>>8), byte(n)
		binary.BigEndian.PutUint64(h[32:40], sipHash24(c.k0, c.k1, h[:32]))
		return h
	}
	for _, tc := range []struct {
		name string
		kind byte
		n    int
		ok   bool
	}{
		{"empty share", recKindShare, 0, true},
		{"1 MiB", recKindShare, maxRecordData, true},
		{"1 MiB + 1", recKindShare, maxRecordData + 1, false},
		{"largest 24-bit", recKindShare, 1<<24 - 1, false},
		{"tombstone", recKindDelete, 0, true},
		{"tombstone with data", recKindDelete, 1, false},
		{"kind 3", 3, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, n, err := c.parseHeader(hdr(tc.kind, tc.n))
			if tc.ok != (err == nil) || tc.ok && n != tc.n {
				t.Fatalf("parseHeader: %d, %v; want sound %v", n, err, tc.ok)
			}
			if !tc.ok || tc.n == 0 {
				return
			}
			// Straddling the end: a torn tail at the record.
			b := append(encodePackHeader([]byte("0123456789abcdef")), hdr(tc.kind, tc.n)...)
			b = append(b, make([]byte, tc.n-1)...)
			keep, err := scanPack(b, true, func(ev scanEvent) { t.Errorf("event %+v in a pack of one torn record", ev) })
			if err != nil || keep != packHdrLen {
				t.Errorf("scan keeps %d, %v; want %d", keep, err, packHdrLen)
			}
		})
	}
}

// TestReview5FormatUpgrade: FORMAT after an open, from each FORMAT this
// tarn reads: 4 whenever packing is on or packs/ exists (a Delete of a
// packed share then appends to a new version 3 pack), naming the last
// pack there before, else unchanged; a FORMAT 4 stays as it is.
func TestReview5FormatUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string
		packs  bool
		noPack bool
		want   string
	}{
		{"1, packing on", formatLine, false, false, formatPacked},
		{"1, packing off", formatLine, false, true, formatLine},
		{"2, packing on", formatPackedV1, true, false, formatV4(1)},
		{"2, packing off", formatPackedV1, true, true, formatV4(1)},
		{"3, packing off", formatPackedV2, true, true, formatV4(1)},
		{"3, packing on, no packs", formatPackedV2, false, false, formatPacked},
		{"4 after 1, packing on", formatV4(1), true, false, formatV4(1)},
		{"4, packing off", formatPacked, true, true, formatPacked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "FORMAT"), []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.packs {
				writeV1Pack(t, dir, forgeV1(recKindShare, packRef(1), packData(1, 100)))
				os.WriteFile(filepath.Join(dir, "FORMAT"), []byte(tc.before), 0o600)
			}
			d := newDiskOpts(t, dir, Options{NoPack: tc.noPack})
			if b, _ := os.ReadFile(filepath.Join(dir, "FORMAT")); string(b) != tc.want {
				t.Errorf("FORMAT %q after the open, want %q", b, tc.want)
			}
			if tc.packs {
				mustRead(t, d, packRef(1), packData(1, 100))
			}
		})
	}
}

// TestReview5HeaderCopiesDiffer: the first header copy is sound (its CRC
// holds) but holds another key than the second, which the records are
// tagged under (damage the CRC missed, 2^-32, or a bug). Taking the
// first copy's key makes every record unsound, and the open cut the
// whole pack as a torn tail: the key the first record's tag holds under
// must win.
func TestReview5HeaderCopiesDiffer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	catchPackLogs(t)
	d := newDisk(t, dir)
	for i := range 5 {
		if err := d.Put(ctx, packRef(i), packData(i, 1500)); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	pack := packFiles(t, dir)[0]
	f, err := os.OpenFile(pack, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(encodeHeaderCopy(packVersion, []byte("another key 0123")), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st0, _ := os.Stat(pack)
	d2 := newDisk(t, dir)
	for i := range 5 {
		mustRead(t, d2, packRef(i), packData(i, 1500))
	}
	if st, err := os.Stat(pack); err != nil || st.Size() != st0.Size() {
		t.Errorf("pack cut at open: %v", err)
	}
}
