//go:build unix

package storagedisk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// mountSmall mounts a tmpfs of the given size (e.g. "2m") at a new
// folder, unmounted when the test ends; it skips the test where mounting
// is not allowed.
func mountSmall(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a full disk needs a small filesystem: mount tmpfs at %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fillUp writes to a new file at path until the filesystem is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// packTailsSound fails unless every pack of dir ends with a whole, sound
// record (no torn or half-written record left at its tail) and holds no
// damage.
func packTailsSound(t *testing.T, dir string) {
	t.Helper()
	for _, p := range packFiles(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		skipped := false
		keep, err := scanPack(b, true, func(ev scanEvent) { skipped = skipped || ev.skip > 0 })
		if err != nil || keep != int64(len(b)) || skipped {
			t.Errorf("pack %s: %d bytes, sound prefix %d, damage skipped %v", filepath.Base(p), len(b), keep, skipped)
		}
	}
}

// TestPackDiskFull fills a small filesystem with packed shares, 8 Puts at
// a time (so that appends race past the free-space check): every Put
// either succeeds or fails with ErrNoSpace; no part of a failed record is
// left in a pack; every acknowledged share reads back; Space counts the
// packs; the room kept for deletes lets every share be deleted, and the
// deletes give the space back (the current pack, mostly dead, is
// compacted); Puts then succeed again; and a reopen finds every share
// still there and no damage.
func TestPackDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(mountSmall(t, "2m"), "store")
	logged := catchPackLogs(t)
	d := newDisk(t, dir)
	sp0, err := d.Space(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[int]int{} // share -> size
	var mu sync.Mutex
	next, failures := 0, 0
	for round := 0; failures < 24 && round < 200; round++ {
		var wg sync.WaitGroup
		for range 8 {
			i := next
			next++
			size := 3000 + (i%5)*20000
			wg.Go(func() {
				err := d.Put(ctx, packRef(i), packData(i, size))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					acked[i] = size
				case errors.Is(err, storage.ErrNoSpace):
					failures++
				default:
					t.Errorf("put %d of %d bytes on a full disk: %v, want ErrNoSpace", i, size, err)
				}
			})
		}
		wg.Wait()
		packTailsSound(t, dir)
	}
	if failures == 0 || len(acked) == 0 {
		t.Fatalf("%d puts acknowledged, %d refused; want both", len(acked), failures)
	}
	packed := packBytes(t, dir)
	sp1, err := d.Space(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sp0.Free-sp1.Free < packed-(64<<10) || sp1.Free > packDeleteRoom+maxPackShare {
		t.Errorf("Space: free %d before, %d after %d bytes of packs", sp0.Free, sp1.Free, packed)
	}
	t.Logf("%d puts acknowledged (%d bytes of packs), %d refused; free %d -> %d", len(acked), packed, failures, sp0.Free, sp1.Free)
	for i, size := range acked {
		mustRead(t, d, packRef(i), packData(i, size))
	}

	// Deletes (lease expiry, corruption advisories) work on the full
	// disk and give its space back. Two of the smallest shares stay: a
	// compaction waits until the free space holds its copies (and half
	// the room kept for deletes), which two large ones would not leave.
	keep := 0
	for _, i := range slices.Sorted(maps.Keys(acked)) {
		if keep < 2 && acked[i] == 3000 {
			keep++
			continue
		}
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatalf("delete share %d on a full disk: %v", i, err)
		}
		delete(acked, i)
	}
	packTailsSound(t, dir)
	sp2, err := d.Space(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sp2.Free < sp0.Free/2 {
		t.Errorf("Space after deleting all but %d shares: %d free (%d bytes of packs), want over %d", len(acked), sp2.Free, packBytes(t, dir), sp0.Free/2)
	}
	t.Logf("after deletes: %d free, %d bytes of packs", sp2.Free, packBytes(t, dir))
	for i := next; i < next+8; i++ {
		if err := d.Put(ctx, packRef(i), packData(i, 20000)); err != nil {
			t.Fatalf("put after the deletes: %v", err)
		}
		acked[i] = 20000
	}
	packTailsSound(t, dir)
	d.Close()
	d2 := newDisk(t, dir)
	for i, size := range acked {
		mustRead(t, d2, packRef(i), packData(i, size))
	}
	for _, l := range logged() {
		if strings.Contains(l, "damaged") || strings.Contains(l, "torn") || strings.Contains(l, "compact") {
			t.Errorf("pack log: %s", l)
		}
	}
}

// TestPackAppendNoSpace: an append that runs out of room mid-record (the
// file system writes what fits and says ENOSPC only when asked again)
// fails with ErrNoSpace through Put and Delete alike, and leaves no part
// of the record in the pack.
func TestPackAppendNoSpace(t *testing.T) {
	ctx := context.Background()
	mnt := mountSmall(t, "1m")
	dir := filepath.Join(mnt, "store")
	d := newDisk(t, dir)
	if err := d.Put(ctx, packRef(1), packData(1, 1000)); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)
	st, _ := os.Stat(filler)
	if err := os.Truncate(filler, st.Size()-4096); err != nil { // one page free
		t.Fatal(err)
	}
	before := packBytes(t, dir)
	// Past Put's free-space check, as Puts racing each other get.
	_, err := d.pack.append(recKindShare, packRef(2), packData(2, 9000))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("append of a record bigger than the room left: %v, want ENOSPC", err)
	}
	if got := packBytes(t, dir); got != before {
		t.Errorf("the pack grew from %d to %d bytes by a failed append", before, got)
	}
	// A compaction's batch of copies: the first fits, the second does
	// not; none of the batch stays.
	var recs []rawRecord
	for i, n := range []int{1000, 9000} {
		recs = append(recs, rawRecord{recKindShare, packRef(10 + i), packData(10+i, n)})
	}
	if _, err := d.pack.appendRaw(recs); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("appendRaw past the room left: %v, want ENOSPC", err)
	}
	if got := packBytes(t, dir); got != before {
		t.Errorf("the pack grew from %d to %d bytes by a failed batch", before, got)
	}
	if err := d.Put(ctx, packRef(3), packData(3, 9000)); !errors.Is(err, storage.ErrNoSpace) {
		t.Errorf("put with no room: %v, want ErrNoSpace", err)
	}
	os.Remove(filler)
	if err := d.Put(ctx, packRef(2), packData(2, 9000)); err != nil {
		t.Fatalf("put once room is back: %v", err)
	}
	packTailsSound(t, dir)
	d.Close()
	d2 := newDisk(t, dir)
	mustRead(t, d2, packRef(1), packData(1, 1000))
	mustRead(t, d2, packRef(2), packData(2, 9000))
}

// TestCurrentPackCompacted: deleting most shares of the current pack
// gives their space back once the dead bytes reach compactCurrentMin (the
// pack is rolled and compacted); below that the pack stays.
func TestCurrentPackCompacted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	for i := range 40 {
		if err := d.Put(ctx, packRef(i), packData(i, 50000)); err != nil {
			t.Fatal(err)
		}
	}
	first := packFiles(t, dir)
	if len(first) != 1 {
		t.Fatalf("packs %v, want one", first)
	}
	// 8 deleted: 400 KB dead, under compactCurrentMin: nothing moves.
	for i := range 8 {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := packFiles(t, dir); !slices.Equal(got, first) {
		t.Errorf("packs %v after 8 of 40 deletes, want %v", got, first)
	}
	for i := 8; i < 32; i++ {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := packFiles(t, dir)
	if slices.Contains(got, first[0]) || len(got) != 1 {
		t.Errorf("packs %v after 32 of 40 deletes, want the first one compacted into a new one", got)
	}
	// Compacted with 10 live, under a quarter of the pack; 2 deleted since.
	if n := packBytes(t, dir); n > 10*(50000+recHeaderLen)+recHeaderLen*32+packV3Start {
		t.Errorf("%d bytes of packs hold 8 live shares", n)
	}
	check := func(d *Disk) {
		for i := range 40 {
			if i < 32 {
				if _, err := d.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("deleted share %d: %v", i, err)
				}
				continue
			}
			mustRead(t, d, packRef(i), packData(i, 50000))
		}
	}
	check(d)
	if err := d.Put(ctx, packRef(40), packData(40, 50000)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := newDisk(t, dir)
	check(d2)
	mustRead(t, d2, packRef(40), packData(40, 50000))
}

// TestWarnLogf: the served plugin logs pack damage as hclog JSON at warn
// level, which its host re-logs at that level (plain lines only at debug).
func TestWarnLogf(t *testing.T) {
	var b strings.Builder
	warnLogf(&b)("storage disk: pack %s: torn tail of %d bytes at %d cut off", "00000001.pack", 20, 40)
	var line struct {
		Level   string `json:"@level"`
		Message string `json:"@message"`
	}
	if err := json.Unmarshal([]byte(b.String()), &line); err != nil {
		t.Fatalf("log line %q: %v", b.String(), err)
	}
	if line.Level != "warn" || line.Message != "storage disk: pack 00000001.pack: torn tail of 20 bytes at 40 cut off" {
		t.Errorf("log line %+v", line)
	}
}

// catchPackLogs collects what the pack logs during the test.
func catchPackLogs(t *testing.T) func() []string {
	var mu sync.Mutex
	var lines []string
	real := packLogf
	packLogf = func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	t.Cleanup(func() { packLogf = real })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
}

// packBytes is the size of every pack of dir together.
func packBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range packFiles(t, dir) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestPackForgedRecordInDamagedShare: a share's bytes come from a client
// and may hold a whole, sound record naming another share. When the
// share's own record is damaged in its data (its header still sound), the
// scan at open steps over the record by its length and never takes the
// forged record inside it: the other share keeps its bytes.
func TestPackForgedRecordInDamagedShare(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	victim, attacker := packRef(1), packRef(2)
	if err := d.Put(ctx, victim, packData(1, 1000)); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 1000)
	forged := make([]byte, recHeaderLen, recHeaderLen+len(junk))
	keyCodec(make([]byte, 16), packV3Start).encodeHeader(forged, recKindShare, victim, junk) // the client's guess of the key
	forged = append(forged, junk...)
	data := append(append(make([]byte, 500), forged...), make([]byte, 500)...)
	if err := d.Put(ctx, attacker, data); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// Damage the attacker's record in its first 500 bytes of data.
	pack := packFiles(t, dir)[0]
	f, err := os.OpenFile(pack, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(packV3Start+recHeaderLen+1000) + recHeaderLen + 100
	if _, err := f.WriteAt([]byte{0xff, 0xee}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	logged := catchPackLogs(t)
	d2 := newDisk(t, dir)
	mustRead(t, d2, victim, packData(1, 1000))
	if _, err := d2.Stat(ctx, attacker); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the damaged share: %v, want ErrNotFound", err)
	}
	if l := logged(); len(l) != 1 || !strings.Contains(l[0], "torn tail") {
		t.Errorf("logged %q, want the damaged last record cut as a torn tail", l)
	}
}

// TestCompactWaitsForPendingPut: a Put whose record is durable in the
// current pack but not yet settled in the index when a Delete compacts
// that pack: the compaction waits for it, so the share is not left
// pointing at the removed pack; it reads back, also after a reopen.
func TestCompactWaitsForPendingPut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	threeOfEightLive(t, ctx, d)
	first := packFiles(t, dir)
	release, entered := make(chan struct{}), make(chan struct{})
	packAppended = func(ref storage.Ref) {
		if ref == packRef(20) {
			close(entered)
			<-release
		}
	}
	t.Cleanup(func() { packAppended = func(storage.Ref) {} })
	putErr := make(chan error, 1)
	go func() { putErr <- d.Put(ctx, packRef(20), packData(20, 10000)) }()
	<-entered
	released := time.AfterFunc(200*time.Millisecond, func() { close(release) })
	defer released.Stop()
	// Under a quarter live after these: the current pack is rolled and
	// compacted while the Put above is not settled.
	for _, i := range []int{5, 6} {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-putErr; err != nil {
		t.Fatalf("put during the compaction: %v", err)
	}
	if got := packFiles(t, dir); slices.Contains(got, first[0]) {
		t.Errorf("packs %v: the first was not compacted", got)
	}
	mustRead(t, d, packRef(20), packData(20, 10000))
	mustRead(t, d, packRef(7), packData(7, 10000))
	d.Close()
	d2 := newDisk(t, dir)
	for _, i := range []int{7, 20} {
		mustRead(t, d2, packRef(i), packData(i, 10000))
	}
}

// threeOfEightLive makes compaction of the current pack possible at once
// (compactCurrentMin 1 for the test) and leaves d with 8 shares of 10,000
// bytes put and the first 5 deleted: 3 of 8 live, not yet under a
// quarter, so the next Delete compacts.
func threeOfEightLive(t *testing.T, ctx context.Context, d *Disk) {
	t.Helper()
	oldMin := compactCurrentMin
	compactCurrentMin = 1
	t.Cleanup(func() { compactCurrentMin = oldMin })
	for i := range 8 {
		if err := d.Put(ctx, packRef(i), packData(i, 10000)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if err := d.Delete(ctx, packRef(i)); err != nil {
			t.Fatal(err)
		}
	}
}
