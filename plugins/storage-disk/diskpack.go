//go:build unix

package storagedisk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
)

// packed reports whether ref is in the pack, visible or being put.
func (d *Disk) packed(ref storage.Ref) bool { return d.pack != nil && d.pack.has(ref) }

// putPacked appends a small share to the current pack and returns once
// the record is durable. Under the index's stripe lock the share is
// claimed (refused if it exists in either layout), so that a concurrent
// Put, Create or Seal of the same share sees it; it becomes visible only
// after the group-committed fdatasync that covers its record.
func (d *Disk) putPacked(ref storage.Ref, path string, data []byte) error {
	mu := d.stripe(ref.Index)
	mu.Lock()
	_, err := os.Lstat(path)
	if err == nil || !d.pack.claim(ref) {
		mu.Unlock()
		return fmt.Errorf("put share %s: %w", ref, storage.ErrExists)
	}
	mu.Unlock()
	packClaimed(ref)
	loc, err := d.pack.append(recKindShare, ref, data)
	if err != nil {
		d.pack.settle(ref, nil)
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
		}
		return fmt.Errorf("put share %s: %w", ref, err)
	}
	packAppended(ref)
	d.pack.settle(ref, &loc)
	return nil
}

// withPacked runs fn on the pack and location of ref if it is a visible
// packed share (ok true; err is fn's). A compaction or reclaim may close
// the pack between the look-up and fn's read: the share has then moved to
// another pack (or was deleted), so the look-up is made again. ok is
// false when the share is not (or no longer) packed.
func (d *Disk) withPacked(ref storage.Ref, fn func(pf *os.File, loc packLoc) error) (ok bool, err error) {
	for try := 0; ; try++ {
		loc, pf, found := d.pack.find(ref)
		if !found {
			return false, nil // not packed, or deleted meanwhile
		}
		packFound(ref)
		err = fn(pf, loc)
		if !errors.Is(err, os.ErrClosed) || try == 3 {
			return true, err
		}
	}
}

// packFound runs between a read's look-up of a packed share and its read
// (tests move the share meanwhile).
var packFound = func(storage.Ref) {}

// packClaimed runs between a packed Put's claim and its append (tests
// hold a Put there).
var packClaimed = func(storage.Ref) {}

// packAppended runs between a packed Put's durable append and its
// settling in the index (tests widen that window).
var packAppended = func(storage.Ref) {}

// deletePacked deletes ref if it is a packed share (packed true): under
// the index's stripe lock it appends a tombstone and, once that is
// durable, drops the share from the index; a pack left with no live
// share is removed when every older pack is gone. It returns the pack
// that held the share, for the caller to compact.
func (d *Disk) deletePacked(ref storage.Ref) (pack uint32, packed bool, err error) {
	mu := d.stripe(ref.Index)
	mu.Lock()
	defer mu.Unlock()
	loc, _, ok := d.pack.find(ref)
	if !ok {
		return 0, false, nil
	}
	if _, err := d.pack.append(recKindDelete, ref, nil); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
		}
		return 0, true, fmt.Errorf("delete share %s: %w", ref, err)
	}
	d.pack.remove(ref)
	d.pack.reclaim()
	return loc.pack, true, nil
}

// PackedShare says where a packed share's bytes lie in a backend folder.
type PackedShare struct {
	Ref    storage.Ref
	Pack   string // the pack file's path
	Offset int64  // of the share's first byte in Pack
	Length int64
}

// PackedShares lists the packed shares of the backend folder dir, as the
// scan at open would find them, sorted by pack and offset. It only reads
// (no lock, no cut of a torn tail), so tools and tests may run it beside
// the process using the folder; a record being appended meanwhile may be
// missed. A folder without packs gives none.
func PackedShares(dir string) ([]PackedShare, error) {
	pdir := filepath.Join(dir, "packs")
	ents, err := os.ReadDir(pdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list packs of %s: %w", dir, err)
	}
	fb, err := os.ReadFile(filepath.Join(dir, "FORMAT"))
	if err != nil {
		return nil, fmt.Errorf("read FORMAT of %s: %w", dir, err)
	}
	ver, oldMax, ok := parseFormat(string(fb))
	if !ok {
		return nil, fmt.Errorf("storage disk folder %s: FORMAT says %q, this tarn does not read it", dir, fb)
	}
	live := map[storage.Ref]PackedShare{}
	for _, e := range ents { // ReadDir sorts by name: pack order
		num, ok := parsePackName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(pdir, e.Name())
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read pack %s: %w", name, err)
		}
		_, err = scanPack(b, ver >= 4 && num > oldMax, func(ev scanEvent) {
			switch {
			case ev.skip > 0:
			case ev.rec.kind == recKindShare:
				live[ev.rec.ref] = PackedShare{Ref: ev.rec.ref, Pack: name, Offset: ev.off + recHeaderLen, Length: int64(len(ev.rec.data))}
			default:
				delete(live, ev.rec.ref)
			}
		})
		if errors.Is(err, errPackTorn) || errors.Is(err, errPackHeader) {
			continue // no record, or none that can be checked: the open skips it too
		}
		if err != nil {
			return nil, fmt.Errorf("pack %s at 0: %w", name, err)
		}
	}
	out := make([]PackedShare, 0, len(live))
	for _, s := range live {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PackedShare) int {
		if c := strings.Compare(a.Pack, b.Pack); c != 0 {
			return c
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}
