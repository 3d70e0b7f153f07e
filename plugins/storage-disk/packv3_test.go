//go:build unix

package storagedisk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
)

// readFormat returns the FORMAT of the backend folder dir.
func readFormat(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "FORMAT"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// v2Rec returns a record of the version 2 layout under codec c.
func v2Rec(c *recCodec, kind byte, ref storage.Ref, data []byte) []byte {
	b := make([]byte, recHeaderLen, recHeaderLen+len(data))
	c.encodeHeader(b, kind, ref, data)
	return append(b, data...)
}

// writeV2Folder makes dir a FORMAT 3 folder (as the build of 2026-11-27
// morning left it) whose packs are version 2 packs (header copies at 0
// and 32, records from 64) holding the given records, one slice per pack.
func writeV2Folder(t *testing.T, dir string, packs ...[]byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "FORMAT"), []byte(formatPackedV2), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, recs := range packs {
		if err := os.WriteFile(filepath.Join(dir, "packs", packName(uint32(i+1))), recs, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPackV3SectorLoss: a version 3 pack's header copies lie in two 4 KiB
// blocks (A at 0, B at 4096), its records from 8192, so one lost sector
// or block takes at most one copy: the pack is read whole, its tombstones
// applied (a share deleted from an older pack stays deleted), nothing is
// logged or cut, and it is not stuck (reclaim may remove it).
func TestPackV3SectorLoss(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		off, n   int64
		wantRead bool
	}{
		{"first 512 bytes zeroed", 0, 512, true},
		{"first 4096 bytes zeroed", 0, 4096, true},
		{"sector of copy B zeroed", packV3CopyB, 512, true},
		{"block of copy B zeroed", packV3CopyB, 4096, true},
		{"both copies zeroed", 0, packV3Start, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logs := catchPackLogs(t)
			d := newDisk(t, dir)
			deleted := packRef(100)
			if err := d.Put(ctx, deleted, packData(100, 500)); err != nil {
				t.Fatal(err)
			}
			if err := d.Put(ctx, packRef(101), packData(101, 500)); err != nil {
				t.Fatal(err)
			}
			// Everything else in pack 2: the tombstone of a share in
			// pack 1, and shares.
			d.pack.amu.Lock()
			d.pack.rollAt = 1
			d.pack.amu.Unlock()
			if err := d.Put(ctx, packRef(0), packData(0, 3000)); err != nil {
				t.Fatal(err)
			}
			d.pack.amu.Lock()
			d.pack.rollAt = packRollSize
			d.pack.amu.Unlock()
			if err := d.Delete(ctx, deleted); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < 10; i++ {
				if err := d.Put(ctx, packRef(i), packData(i, 3000)); err != nil {
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
			zeroAt(t, pack, tc.off, tc.n)
			d2 := newDisk(t, dir)
			for i := range 10 {
				_, err := d2.Stat(ctx, packRef(i))
				if tc.wantRead {
					mustRead(t, d2, packRef(i), packData(i, 3000))
				} else if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("share %d of a pack with both copies zeroed: %v, want ErrNotFound", i, err)
				}
			}
			mustRead(t, d2, packRef(101), packData(101, 500))
			if st, err := os.Stat(pack); err != nil || st.Size() != st0.Size() {
				t.Errorf("pack after the open: %v, size changed from %d", err, st0.Size())
			}
			if !tc.wantRead {
				if !d2.pack.stuck[2] {
					t.Error("pack with both copies zeroed is not kept unread (stuck)")
				}
				return
			}
			if _, err := d2.Stat(ctx, deleted); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("share deleted by a tombstone in the damaged pack: %v, want ErrNotFound", err)
			}
			if l := logs(); len(l) != 0 {
				t.Errorf("logged %q, want nothing", l)
			}
			if d2.pack.stuck[2] {
				t.Error("pack 2 is stuck")
			}
		})
	}
}

// TestPackV2StillRead: a folder left by the build that wrote version 2
// packs (header copies at 0 and 32) is read: its shares and tombstones
// count, FORMAT moves to 4 naming its last pack, the version 2 pack is
// never appended to (new records go to a version 3 pack), and every
// share is right after a reopen. A version 2 pack's header damaged in
// both copies is still kept unread.
func TestPackV2StillRead(t *testing.T) {
	ctx := context.Background()
	for _, damaged := range []bool{false, true} {
		name := "sound"
		if damaged {
			name = "first sector zeroed"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			catchPackLogs(t)
			key := []byte("morning key 0123")
			c := keyCodec(key, packHdrLen)
			v2 := encodePackHeader(key)
			for i := range 6 {
				v2 = append(v2, v2Rec(c, recKindShare, packRef(i), packData(i, 2000))...)
			}
			v2 = append(v2, v2Rec(c, recKindDelete, packRef(5), nil)...)
			writeV2Folder(t, dir, v2)
			if damaged {
				clear(v2[:512])
				writeV2Folder(t, dir, v2)
			}
			d := newDisk(t, dir)
			if got, want := readFormat(t, dir), formatV4(1); got != want {
				t.Errorf("FORMAT %q after the open, want %q", got, want)
			}
			check := func(d *Disk) {
				t.Helper()
				for i := range 5 {
					if damaged {
						if _, err := d.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
							t.Errorf("share %d of a damaged version 2 pack: %v, want ErrNotFound", i, err)
						}
						continue
					}
					mustRead(t, d, packRef(i), packData(i, 2000))
				}
				if _, err := d.Stat(ctx, packRef(5)); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("deleted share 5: %v, want ErrNotFound", err)
				}
				mustRead(t, d, packRef(20), packData(20, 700))
			}
			if err := d.Put(ctx, packRef(20), packData(20, 700)); err != nil {
				t.Fatal(err)
			}
			check(d)
			d.Close()
			if st, err := os.Stat(filepath.Join(dir, "packs", packName(1))); err != nil || st.Size() != int64(len(v2)) {
				t.Errorf("version 2 pack after the open: %v (appended to or cut?)", err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "packs", packName(2)))
			if err != nil {
				t.Fatal(err)
			}
			if c, start, err := parsePackHeader(b, true); err != nil || start != packV3Start || !soundHeaderCopy(b[packV3CopyB:packV3CopyB+packHdrCopy], packVersion) || c == nil {
				t.Errorf("new pack: start %d, %v; want version 3 with copy B at %d", start, err, packV3CopyB)
			}
			check(newDisk(t, dir))
		})
	}
}

// TestPackV2ForgedCopyB: in a version 2 pack whose first sector is lost,
// the bytes at 4096 may be a client's share bytes, and a version 3 copy B
// forged there (under a key its writer knows) would make its forged
// records sound. A pack no later than the last one FORMAT names as older
// is never read by copy B alone: the forged tombstone of a share in an
// earlier pack is not taken.
func TestPackV2ForgedCopyB(t *testing.T) {
	dir := t.TempDir()
	catchPackLogs(t)
	key := []byte("morning key 0123")
	c := keyCodec(key, packHdrLen)
	victim := packRef(1)
	pack1 := append(encodePackHeader(key), v2Rec(c, recKindShare, victim, packData(1, 1000))...)

	// Pack 2: one share whose bytes hold, at file offsets 4096 and 8192,
	// a version 3 header copy and a tombstone of the victim under the
	// client's key; the share ends with the tombstone.
	ckey := []byte("client key 01234")
	dataOff := packHdrLen + recHeaderLen
	data := make([]byte, packV3Start+recHeaderLen-dataOff)
	copy(data[packV3CopyB-dataOff:], encodeHeaderCopy(packVersion, ckey))
	keyCodec(ckey, packV3Start).encodeHeader(data[packV3Start-dataOff:], recKindDelete, victim, nil)
	pack2 := append(encodePackHeader(key), v2Rec(c, recKindShare, packRef(2), data)...)
	clear(pack2[:512])
	writeV2Folder(t, dir, pack1, pack2)
	if _, _, err := parsePackHeader(pack2, true); err != nil {
		t.Fatalf("the forged copy B is not sound: %v (the test proves nothing)", err)
	}

	d := newDisk(t, dir)
	mustRead(t, d, victim, packData(1, 1000))
	if !d.pack.stuck[2] {
		t.Error("version 2 pack with its first sector zeroed is not kept unread")
	}
	d.Close()
	if got, want := readFormat(t, dir), formatV4(2); got != want {
		t.Errorf("FORMAT %q, want %q", got, want)
	}
	mustRead(t, newDisk(t, dir), victim, packData(1, 1000))
}

// TestParseFormat: the FORMATs this tarn reads, and some it refuses.
func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ver    int
		oldMax uint32
		ok     bool
	}{
		{formatLine, 1, 0, true},
		{formatPackedV1, 2, 0, true},
		{formatPackedV2, 3, 0, true},
		{formatPacked, 4, 0, true},
		{"tarn-storage-disk 4 after 00000007\n", 4, 7, true},
		{"tarn-storage-disk 4 after 00000007", 0, 0, false},
		{"tarn-storage-disk 4 after 7\n", 0, 0, false},
		{"tarn-storage-disk 4 after 00000000\n", 0, 0, false},
		{"tarn-storage-disk 5\n", 0, 0, false},
		{"", 0, 0, false},
	} {
		ver, oldMax, ok := parseFormat(tc.in)
		if ver != tc.ver || oldMax != tc.oldMax || ok != tc.ok {
			t.Errorf("parseFormat(%q) = %d, %d, %v; want %d, %d, %v", tc.in, ver, oldMax, ok, tc.ver, tc.oldMax, tc.ok)
		}
	}
	if got := formatV4(7); got != "tarn-storage-disk 4 after 00000007\n" {
		t.Errorf("formatV4(7) = %q", got)
	}
}

// TestPackNumberedAfterOlder: once the packs FORMAT names as older are
// gone, a new pack is still numbered after them (a pack numbered among
// them would never be read by its copy B alone), and its first sector's
// loss costs nothing.
func TestPackNumberedAfterOlder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	catchPackLogs(t)
	if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "FORMAT"), []byte(formatV4(7)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDisk(t, dir)
	if err := d.Put(ctx, packRef(1), packData(1, 1000)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	packs := packFiles(t, dir)
	if len(packs) != 1 || filepath.Base(packs[0]) != packName(8) {
		t.Fatalf("packs %v, want %s alone", packs, packName(8))
	}
	zeroAt(t, packs[0], 0, 512)
	mustRead(t, newDisk(t, dir), packRef(1), packData(1, 1000))
}
