//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// TestSipHash: sipHash24 gives the SipHash paper's outputs (key 00..0f,
// message 00..n-1; Appendix A and the reference vectors).
func TestSipHash(t *testing.T) {
	k0 := binary.LittleEndian.Uint64([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	k1 := binary.LittleEndian.Uint64([]byte{8, 9, 10, 11, 12, 13, 14, 15})
	msg := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		n    int
		want uint64
	}{
		{"empty", 0, 0x726fdb47dd0e0e31},
		{"one byte", 1, 0x74f839c593dc67fd},
		{"paper appendix A, 15 bytes", 15, 0xa129ca6149be45e5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sipHash24(k0, k1, msg(tc.n)); got != tc.want {
				t.Errorf("siphash of %d bytes: %#x, want %#x", tc.n, got, tc.want)
			}
		})
	}
}

// forgeV1 builds a sound version 1 record by hand (anyone can: its
// checksums are keyless), as a client may write one into its share bytes.
func forgeV1(kind byte, ref storage.Ref, data []byte) []byte {
	h := make([]byte, 40, 40+len(data))
	copy(h, "TPK1")
	h[4] = kind
	copy(h[8:24], ref.Index[:])
	binary.BigEndian.PutUint32(h[24:28], ref.Num)
	binary.BigEndian.PutUint32(h[28:32], uint32(len(data)))
	tab := crc32.MakeTable(crc32.Castagnoli)
	binary.BigEndian.PutUint32(h[32:36], crc32.Checksum(h[:32], tab))
	binary.BigEndian.PutUint32(h[36:40], crc32.Update(crc32.Update(0, tab, h[:36]), tab, data))
	return append(h, data...)
}

// packedAt finds where the share ref's bytes lie in dir's packs.
func packedAt(t *testing.T, dir string, ref storage.Ref) PackedShare {
	t.Helper()
	ps, err := PackedShares(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Ref == ref {
			return p
		}
	}
	t.Fatalf("share %s is not packed", ref)
	return PackedShare{}
}

// flip xors one byte of the file at path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestPackForgedTombstoneAfterHeaderDamage: a client's share bytes hold
// records naming another share (the victim): tombstones forged in the
// version 1 layout (keyless checksums) and in the version 2 layout under
// a guessed key. Bit rot then hits the header of the client's record, so
// the scan at open resyncs from the next byte, through the client's
// bytes. No forged record is taken: the victim keeps its bytes, and the
// records after the damage are found.
func TestPackForgedTombstoneAfterHeaderDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		at   int64 // in the attacker's record header
	}{
		{"length", 7},
		{"share number", 27},
		{"magic", 1},
		{"tag", 35},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, dir)
			victim, attacker, after := packRef(1), packRef(2), packRef(3)
			if err := d.Put(ctx, victim, packData(1, 1000)); err != nil {
				t.Fatal(err)
			}
			var data []byte
			for i := range 50 {
				data = append(data, make([]byte, i%7)...)
				data = append(data, forgeV1(recKindDelete, victim, nil)...)
				var h [recHeaderLen]byte
				guess := make([]byte, 16)
				guess[0] = byte(i)
				keyCodec(guess, packV3Start).encodeHeader(h[:], recKindDelete, victim, nil)
				data = append(data, h[:]...)
			}
			if err := d.Put(ctx, attacker, data); err != nil {
				t.Fatal(err)
			}
			if err := d.Put(ctx, after, packData(3, 500)); err != nil {
				t.Fatal(err)
			}
			d.Close()
			at := packedAt(t, dir, attacker)
			flip(t, at.Pack, at.Offset-recHeaderLen+tc.at)
			logged := catchPackLogs(t)
			d2 := newDisk(t, dir)
			mustRead(t, d2, victim, packData(1, 1000))
			mustRead(t, d2, after, packData(3, 500))
			if _, err := d2.Stat(ctx, attacker); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the damaged share: %v, want ErrNotFound", err)
			}
			if l := logged(); len(l) != 1 || !strings.Contains(l[0], "damaged bytes at") {
				t.Errorf("logged %q, want one line of damage", l)
			}
		})
	}
}

// TestPackScanBoundedV1: a version 1 pack (from before) whose bytes are
// hostile: sound version 1 headers every 40 bytes, each claiming 1 MiB of
// data that does not match, after a damaged header. Checking every
// candidate's data would checksum about a terabyte; the scan gives up
// after its budget, logs it with the offset, keeps the pack whole (no cut:
// the rest may hold acknowledged shares) and keeps the records before.
func TestPackScanBoundedV1(t *testing.T) {
	dir := t.TempDir()
	good := forgeV1(recKindShare, packRef(1), packData(1, 1000))
	var pack []byte
	pack = append(pack, good...)
	pack = append(pack, "TPK1junk"...) // damage: not a header
	for len(pack) < 8<<20 {
		h := forgeV1(recKindShare, packRef(2), nil)
		binary.BigEndian.PutUint32(h[28:32], maxRecordData) // claims 1 MiB
		binary.BigEndian.PutUint32(h[32:36], crc32.Checksum(h[:32], castagnoli))
		pack = append(pack, h...)
	}
	writeV1Pack(t, dir, pack)
	logged := catchPackLogs(t)
	start := time.Now()
	d := newDisk(t, dir)
	took := time.Since(start)
	t.Logf("open took %v", took)
	if took > 20*time.Second {
		t.Errorf("open of an 8 MiB hostile pack took %v", took)
	}
	mustRead(t, d, packRef(1), packData(1, 1000))
	if l := logged(); len(l) != 1 || !strings.Contains(l[0], "not read") || !strings.Contains(l[0], "damage at 1040") {
		t.Errorf("logged %q, want one line giving up at 1040", l)
	}
	if st, err := os.Stat(filepath.Join(dir, "packs", packName(1))); err != nil || st.Size() != int64(len(pack)) {
		t.Errorf("the hostile pack was cut: %v", err)
	}
}

// TestPackScanBoundedV2: in a version 2 pack a client cannot make a
// header whose tag holds, so a damaged record followed by a share of
// nothing but "TPK2" costs one 32-byte hash per occurrence: the open
// stays fast, and the records after it are found.
func TestPackScanBoundedV2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	hostile := bytes.Repeat([]byte("TPK2\x01\x0f\xff\xff"), maxPackShare/8)
	for i := range 32 {
		if err := d.Put(ctx, packRef(10+i), hostile); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Put(ctx, packRef(1), packData(1, 100)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	at := packedAt(t, dir, packRef(10))
	flip(t, at.Pack, at.Offset-recHeaderLen+6) // its length: the scan resyncs through 8 MiB
	catchPackLogs(t)
	start := time.Now()
	d2 := newDisk(t, dir)
	t.Logf("open took %v", time.Since(start))
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("open took %v", took)
	}
	mustRead(t, d2, packRef(1), packData(1, 100))
	mustRead(t, d2, packRef(11), hostile)
	if _, err := d2.Stat(ctx, packRef(10)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the damaged share: %v, want ErrNotFound", err)
	}
}

// writeV1Pack makes dir a FORMAT 2 folder whose only pack is a version 1
// pack of the given bytes.
func writeV1Pack(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "FORMAT"), []byte(formatPackedV1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "packs", packName(1)), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPackV1StillRead: a version 1 pack (written before packs had
// headers) is read by its own rules: its shares read and delete; it is
// never appended to (new records go to a new, version 2 pack); its
// compaction copies its live shares as version 2 records and removes it;
// every share is right after a reopen.
func TestPackV1StillRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var v1 []byte
	for i := range 8 {
		v1 = append(v1, forgeV1(recKindShare, packRef(i), packData(i, 2000))...)
	}
	v1 = append(v1, forgeV1(recKindDelete, packRef(7), nil)...)
	writeV1Pack(t, dir, v1)
	oldMin := compactCurrentMin
	compactCurrentMin = 1
	t.Cleanup(func() { compactCurrentMin = oldMin })
	d := newDisk(t, dir)
	if b, want := readFormat(t, dir), formatV4(1); b != want {
		t.Fatalf("FORMAT %q after the open, want %q (version 3 packs may come after pack 1)", b, want)
	}
	for i := range 7 {
		mustRead(t, d, packRef(i), packData(i, 2000))
	}
	if _, err := d.Stat(ctx, packRef(7)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("share deleted in the v1 pack: %v", err)
	}
	if err := d.Put(ctx, packRef(20), packData(20, 300)); err != nil {
		t.Fatal(err)
	}
	if loc, _, _ := d.pack.find(packRef(20)); loc.pack != 2 {
		t.Fatalf("new share in pack %d, want 2 (a new pack)", loc.pack)
	}
	st, _ := os.Stat(filepath.Join(dir, "packs", packName(1)))
	if st.Size() != int64(len(v1)) {
		t.Fatalf("the v1 pack changed: %d bytes, want %d", st.Size(), len(v1))
	}
	for i := range 6 { // 1 of 8 left live: compacted
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := packFiles(t, dir); len(got) != 1 || filepath.Base(got[0]) != packName(2) {
		t.Fatalf("packs %v, want the v1 pack compacted into pack 2", got)
	}
	check := func(d *Disk) {
		t.Helper()
		mustRead(t, d, packRef(6), packData(6, 2000))
		mustRead(t, d, packRef(20), packData(20, 300))
		for _, i := range []int{0, 1, 2, 3, 4, 5, 7} {
			if _, err := d.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("deleted share %d: %v", i, err)
			}
		}
	}
	check(d)
	d.Close()
	check(newDisk(t, dir))
}

// TestPackHeaderDamage: a pack keeps two copies of its header, so damage
// to one costs nothing; damage to both makes the pack unreadable (its
// records cannot be checked without the key): it is logged with its name
// and offset, kept on disk, not indexed, never appended to or removed. A
// pack cut short in its header (a roll a crash cut: it never held a
// record) is removed at open.
func TestPackHeaderDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, pack string)
		readErr bool   // the shares are not read
		log     string // what the open logs
		gone    bool   // the pack is removed
	}{
		{"first copy", func(t *testing.T, pack string) { flip(t, pack, 10) }, false, "", false},
		{"second copy", func(t *testing.T, pack string) { flip(t, pack, packV3CopyB+30) }, false, "", false},
		{"both copies", func(t *testing.T, pack string) {
			flip(t, pack, 10)
			flip(t, pack, packV3CopyB+10)
		}, true, "header at 0 damaged", false},
		{"cut in the header", func(t *testing.T, pack string) {
			if err := os.Truncate(pack, 40); err != nil {
				t.Fatal(err)
			}
		}, true, "header cut short at 0", true},
		{"cut before the first record", func(t *testing.T, pack string) {
			if err := os.Truncate(pack, packV3Start-1); err != nil {
				t.Fatal(err)
			}
		}, true, "header cut short at 0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, dir)
			for i := range 3 {
				if err := d.Put(ctx, packRef(i), packData(i, 700)); err != nil {
					t.Fatal(err)
				}
			}
			d.Close()
			pack := packFiles(t, dir)[0]
			tc.damage(t, pack)
			st0, _ := os.Stat(pack)
			logged := catchPackLogs(t)
			d2 := newDisk(t, dir)
			for i := range 3 {
				if tc.readErr {
					if _, err := d2.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("share %d: %v, want ErrNotFound", i, err)
					}
				} else {
					mustRead(t, d2, packRef(i), packData(i, 700))
				}
			}
			l := logged()
			if tc.log == "" && len(l) != 0 || tc.log != "" && (len(l) != 1 || !strings.Contains(l[0], tc.log) || !strings.Contains(l[0], packName(1))) {
				t.Errorf("logged %q, want %q", l, tc.log)
			}
			if err := d2.Put(ctx, packRef(9), packData(9, 100)); err != nil {
				t.Fatal(err)
			}
			if tc.readErr {
				if loc, _, _ := d2.pack.find(packRef(9)); loc.pack != 2 {
					t.Errorf("put went to pack %d, want a new one", loc.pack)
				}
			}
			d2.Close()
			st, err := os.Stat(pack)
			if tc.gone != (err != nil) || !tc.gone && tc.readErr && st.Size() != st0.Size() {
				t.Errorf("pack after open: %v (removed: want %v)", err, tc.gone)
			}
			mustRead(t, newDisk(t, dir), packRef(9), packData(9, 100))
		})
	}
}

// TestCompactedPackRemoveFails: a compaction whose removal of the
// compacted pack fails leaves that pack on disk, with records of shares
// since deleted. Later compactions must still carry the tombstones that
// keep those shares deleted: after a reopen (the old pack's records read
// again) no deleted share comes back. The pack goes at a later reclaim.
func TestCompactedPackRemoveFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logged := catchPackLogs(t)
	d := newDisk(t, dir)
	threeOfEightLive(t, ctx, d)
	first := packName(1)
	real := packRemove
	fail := true
	packRemove = func(name string) error {
		if fail && filepath.Base(name) == first {
			return &os.PathError{Op: "remove", Path: name, Err: syscall.EIO}
		}
		return real(name)
	}
	t.Cleanup(func() { packRemove = real })
	if err := d.Delete(ctx, packRef(5)); err != nil { // compacts pack 1 into pack 2; its removal fails
		t.Fatal(err)
	}
	if l := logged(); len(l) != 1 || !strings.Contains(l[0], first) || !strings.Contains(l[0], "input/output error") {
		t.Errorf("logged %q, want the failed removal", l)
	}
	// Shares 6 and 7 now lie in pack 2. Deleting them compacts pack 2
	// into pack 3: the tombstones go along while pack 1 is on disk.
	for _, i := range []int{6, 7} {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := packFiles(t, dir); !slices.Contains(got, filepath.Join(dir, "packs", first)) {
		t.Fatalf("packs %v: pack 1 should still be there", got)
	}
	d.Close()
	check := func(d *Disk) {
		t.Helper()
		for i := range 8 {
			if _, err := d.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("deleted share %d after a reopen: %v", i, err)
			}
		}
	}
	d2 := newDisk(t, dir)
	check(d2)
	// The removal works again: the next reclaim takes pack 1.
	fail = false
	if err := d2.Put(ctx, packRef(30), packData(30, 10)); err != nil {
		t.Fatal(err)
	}
	if err := d2.Delete(ctx, packRef(30)); err != nil {
		t.Fatal(err)
	}
	if got := packFiles(t, dir); slices.Contains(got, filepath.Join(dir, "packs", first)) {
		t.Errorf("packs %v: pack 1 is still there", got)
	}
	d2.Close()
	check(newDisk(t, dir))
}

// TestZombieRemovedByReclaim: a compacted pack whose removal failed is
// removed by the next reclaim in the same process (it is a zombie: its
// tombstones were carried), wherever it lies, and reads never go to it.
func TestZombieRemovedByReclaim(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	catchPackLogs(t)
	d := newDisk(t, dir)
	threeOfEightLive(t, ctx, d)
	real := packRemove
	fail := true
	packRemove = func(name string) error {
		if fail {
			return &os.PathError{Op: "remove", Path: name, Err: syscall.EIO}
		}
		return real(name)
	}
	t.Cleanup(func() { packRemove = real })
	if err := d.Delete(ctx, packRef(5)); err != nil {
		t.Fatal(err)
	}
	d.pack.mu.Lock()
	zombie := d.pack.zombie[1]
	d.pack.mu.Unlock()
	if !zombie {
		t.Fatal("pack 1 is not marked a zombie after its removal failed")
	}
	mustRead(t, d, packRef(6), packData(6, 10000))
	fail = false
	if err := d.Delete(ctx, packRef(6)); err != nil {
		t.Fatal(err)
	}
	if got := packFiles(t, dir); len(got) != 1 || filepath.Base(got[0]) != packName(2) {
		t.Errorf("packs %v, want pack 2 alone", got)
	}
	mustRead(t, d, packRef(7), packData(7, 10000))
}

// FuzzScanPack: the pack scanner, header and records, of either version,
// never panics; it reports records only where they parse (both checks
// hold), in order and without overlap, after the header; and keeps a
// prefix no longer than its input.
func FuzzScanPack(f *testing.F) {
	key := []byte("0123456789abcdef")
	c2 := keyCodec(key, packHdrLen)
	rec := func(c *recCodec, kind byte, i int, data []byte) []byte {
		b := make([]byte, recHeaderLen, recHeaderLen+len(data))
		c.encodeHeader(b, kind, packRef(i), data)
		return append(b, data...)
	}
	v1 := append(rec(codecV1, recKindShare, 1, []byte("hello")), rec(codecV1, recKindDelete, 1, nil)...)
	v2 := append(encodePackHeader(key), rec(c2, recKindShare, 1, []byte("hello"))...)
	v2 = append(v2, rec(c2, recKindDelete, 1, nil)...)
	f.Add(v1)
	f.Add(v1[:len(v1)-3])
	f.Add(append([]byte("junk"), v1...))
	f.Add(v2)
	f.Add(v2[:len(v2)-3])
	f.Add(v2[:50])
	f.Add(append(slices.Clone(v2[:packHdrLen]), append([]byte("TPK2junk"), v2[packHdrLen:]...)...))
	f.Add([]byte(packMagicV1))
	// Version 3: whole, cut, copy A's sector zeroed, copy B's zeroed, and
	// copy B alone in a pack too short to hold a record.
	c3 := keyCodec(key, packV3Start)
	v3 := append(encodePackHeaderV3(key), rec(c3, recKindShare, 1, []byte("hello"))...)
	v3 = append(v3, rec(c3, recKindDelete, 1, nil)...)
	f.Add(v3)
	f.Add(v3[:len(v3)-3])
	f.Add(v3[:packV3Start-1])
	noA := slices.Clone(v3)
	clear(noA[:512])
	f.Add(noA)
	noB := slices.Clone(v3)
	clear(noB[packV3CopyB : packV3CopyB+512])
	f.Add(noB)
	f.Add(noA[:packV3CopyB+packHdrCopy])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, newer := range []bool{false, true} {
			fuzzScan(t, b, newer)
		}
	})
}

// fuzzScan checks the scan of pack bytes b: events in file order, each
// record reported parses, the sound prefix covers them.
func fuzzScan(t *testing.T, b []byte, newer bool) {
	c, start, err := parsePackHeader(b, newer)
	if err != nil {
		return
	}
	{
		end := int64(start)
		keep := c.scanRecords(b, start, func(ev scanEvent) {
			if ev.off < end {
				t.Fatalf("event at %d overlaps the one before (ending %d)", ev.off, end)
			}
			if ev.skip > 0 {
				end = ev.off + ev.skip
				return
			}
			r, n, err := c.parseRecord(b[ev.off:])
			if err != nil || r.ref != ev.rec.ref || !bytes.Equal(r.data, ev.rec.data) {
				t.Fatalf("reported record at %d does not parse: %v", ev.off, err)
			}
			end = ev.off + int64(n)
		})
		if keep < end || keep > int64(len(b)) {
			t.Fatalf("keeps %d of %d bytes, last event ends at %d", keep, len(b), end)
		}
	}
}

// leaveFree shrinks the filler file at path until the filesystem of dir
// has about free bytes free (it must have fewer now).
func leaveFree(t *testing.T, dir, filler string, free int64) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	now := int64(fs.Bavail) * int64(fs.Bsize)
	st, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, st.Size()-(free-now)); err != nil {
		t.Fatal(err)
	}
}

// TestCompactSmallFirstOnFullDisk: on a nearly full disk a pack whose
// live shares do not fit in what is free (A: 200 KiB live) is not
// compacted at once; but another pack that wants compaction and fits (B:
// 100 KiB live, refused earlier when the disk was fuller) is compacted
// first, which frees most of B, and then A fits and goes too. Every live
// share reads back, also after a reopen.
func TestCompactSmallFirstOnFullDisk(t *testing.T) {
	ctx := context.Background()
	mnt := mountSmall(t, "8m")
	dir := filepath.Join(mnt, "store")
	catchPackLogs(t)
	d := newDisk(t, dir)
	const size = 100 << 10
	d.pack.rollAt = 10 * (recHeaderLen + size) // ten shares a pack
	// A: shares 0-9 in pack 1, B: 10-19 in pack 2, 20 in pack 3.
	for i := range 21 {
		n := size
		if i == 20 {
			n = 1000
		}
		if err := d.Put(ctx, packRef(i), packData(i, n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(packFiles(t, dir)); got != 3 {
		t.Fatalf("%d packs, want 3", got)
	}
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)
	leaveFree(t, dir, filler, 64<<10) // room for tombstones, not for copies
	// B: 1 of 10 live, wants compaction, no room.
	for i := 10; i < 19; i++ {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(packFiles(t, dir)); got != 3 {
		t.Fatalf("%d packs after B's deletes on a full disk, want 3 (no room to compact)", got)
	}
	// B's copies fit (228 KiB with the margin), A's do not (328).
	leaveFree(t, dir, filler, 280<<10)
	// A: 2 of 10 live: wants compaction.
	for i := range 8 {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := packFiles(t, dir)
	for _, n := range []uint32{1, 2} {
		if slices.Contains(got, filepath.Join(dir, "packs", packName(n))) {
			t.Errorf("packs %v: pack %d should be compacted", got, n)
		}
	}
	check := func(d *Disk) {
		t.Helper()
		for _, i := range []int{8, 9, 19} {
			mustRead(t, d, packRef(i), packData(i, size))
		}
		mustRead(t, d, packRef(20), packData(20, 1000))
		for _, i := range []int{0, 7, 10, 18} {
			if _, err := d.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("deleted share %d: %v", i, err)
			}
		}
	}
	check(d)
	d.Close()
	check(newDisk(t, dir))
}
